-- A shared item leaves the bank only once a broker approved it ([directory]
-- review): who did, and when. Items shared before review existed count as
-- approved by whoever last changed them.
ALTER TABLE dir_items ADD COLUMN approved_by text, ADD COLUMN approved_at timestamptz;
-- Not a change peers need to pull: the item's version and time stay.
ALTER TABLE dir_items DISABLE TRIGGER USER;
UPDATE dir_items SET approved_by = updated_by, approved_at = updated_at
 WHERE visibility = 'federation';
ALTER TABLE dir_items ENABLE TRIGGER USER;
-- What waits for a broker.
CREATE INDEX dir_items_waiting ON dir_items (kind, id)
    WHERE visibility = 'federation' AND approved_at IS NULL AND state = 'active';
