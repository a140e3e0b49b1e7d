-- SQLite only (see its 0004). PostgreSQL keeps its index as it is: it checks a row's lease on the
-- row itself whatever the index holds (its index scans filter on the table's tuple), and a lease
-- not in any index leaves the claim's update free to stay on the row's page (a HOT update).
SELECT 1;
