-- A directory of a million items: searched, expired and synced without
-- reading every one.
--
-- Search narrows by kind, category and area inside the words' GIN index
-- (directory.sql, tb_dir_keys): each item's tsvector gains them as keys
-- no word can make, 'kind:offer', 'category:lifts', and 'area:' with each
-- start of its area ('area:S', 'area:SW', 'area:SW1'). Not a change peers
-- need to pull: own items keep their version and time.
ALTER TABLE dir_items DISABLE TRIGGER USER;
UPDATE dir_items SET tsv = tsv || array_to_tsvector(array_remove(ARRAY[
           'kind:' || kind, 'category:' || category, 'area:' || left(area, 1),
           'area:' || left(area, 2), 'area:' || left(area, 3), 'area:' || left(area, 4)], NULL));
ALTER TABLE dir_items ENABLE TRIGGER USER;
UPDATE dir_remote SET tsv = tsv || array_to_tsvector(array_remove(ARRAY[
           'kind:' || kind, 'category:' || category, 'area:' || left(area, 1),
           'area:' || left(area, 2), 'area:' || left(area, 3), 'area:' || left(area, 4)], NULL));

-- Expiry runs before each search and each page served: it finds the
-- items past their date without reading the others.
CREATE INDEX dir_items_expiring ON dir_items (expires_on) WHERE state = 'active';

-- How many items each peer has here, kept as pages are applied, so that
-- its room under max_directory_items is known without counting them.
ALTER TABLE fed_peers ADD COLUMN dir_held bigint NOT NULL DEFAULT 0;
UPDATE fed_peers p SET dir_held = (SELECT count(*) FROM dir_remote r WHERE r.peer = p.peer);
