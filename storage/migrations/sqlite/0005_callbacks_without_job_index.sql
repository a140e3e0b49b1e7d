-- Every inbound callback wrote an entry to `callbacks_job`, and only `callboard prune` read it (to
-- delete a pruned job's callbacks). Callbacks arrive for jobs in no particular order of their ids,
-- so each entry landed on a page of its own: in the benchmark's ingest it was a quarter of the
-- WAL frames a callback wrote. Prune now deletes processed callbacks by age alone (a pruned job's
-- callbacks are older than the job's end, so they go in the same run), in batches by id.
DROP INDEX callbacks_job;
