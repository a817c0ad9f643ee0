-- How far a running export is (rows read of the total, records written, dropped, rate, ETA),
-- written by the run every few seconds and read by the admin API and the console.
ALTER TABLE export_runs ADD COLUMN progress TEXT;
