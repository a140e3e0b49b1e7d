-- As SQLite's 0005: `callbacks_job` was written by every inbound callback and read only by
-- `callboard prune`, which now deletes processed callbacks by age alone, in batches by id.
DROP INDEX callbacks_job;
