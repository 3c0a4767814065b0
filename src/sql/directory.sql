-- The shared directory: members' offers and requests, what is shared with
-- the federation and synced to peers, search and matching.

-- What search matches: the category's words (label, its name in the
-- taxonomy, when it has one), the text, the availability; and the item's
-- keys, which narrow a search inside the same index. The caller looks the
-- label up, so that this is inlined where a page of items is applied.
CREATE FUNCTION tb_dir_tsv(kind text, category text, label text, text text, availability text,
                           area text)
RETURNS tsvector LANGUAGE sql IMMUTABLE AS $$
    SELECT to_tsvector('english', coalesce(label, category) || ' ' || text || ' '
                                  || coalesce(availability, ''))
           || tb_dir_keys(kind, category, area)
$$;

-- The keys: lexemes no word makes (the parser splits at ':'). An area is
-- keyed by each of its starts, so that a prefix is one key.
CREATE FUNCTION tb_dir_keys(kind text, category text, area text) RETURNS tsvector
LANGUAGE sql IMMUTABLE AS $$
    SELECT array_to_tsvector(array_remove(ARRAY[
               'kind:' || kind, 'category:' || category, 'area:' || left(area, 1),
               'area:' || left(area, 2), 'area:' || left(area, 3), 'area:' || left(area, 4)],
               NULL))
$$;

-- The keys a search asks for (NULL: none); values that no item can hold
-- ask for a key no item has.
CREATE FUNCTION tb_dir_keys_query(kind text, category text, area_prefix text) RETURNS tsquery
LANGUAGE sql IMMUTABLE AS $$
    SELECT nullif(array_to_string(array_remove(ARRAY[
               CASE WHEN kind IS NULL THEN NULL
                    WHEN kind IN ('offer', 'request') THEN quote_literal('kind:' || kind)
                    ELSE quote_literal('kind:none') END,
               CASE WHEN category IS NULL THEN NULL
                    WHEN category ~ '^[a-z-]{1,40}$' THEN quote_literal('category:' || category)
                    ELSE quote_literal('category:none') END,
               CASE WHEN area_prefix IS NULL THEN NULL
                    WHEN upper(area_prefix) ~ '^[A-Z0-9]{1,4}$'
                    THEN quote_literal('area:' || upper(area_prefix))
                    ELSE quote_literal('area:none') END], NULL), ' & '), '')::tsquery
$$;

CREATE FUNCTION tb_dir_item_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.tsv := tb_dir_tsv(NEW.kind, NEW.category,
                          (SELECT label FROM dir_categories WHERE code = NEW.category),
                          NEW.text, NEW.availability, NEW.area);
    IF TG_OP = 'UPDATE' THEN
        NEW.version := nextval('dir_version');
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER dir_items_touch BEFORE INSERT OR UPDATE ON dir_items
    FOR EACH ROW EXECUTE FUNCTION tb_dir_item_touch();

-- A member suspended, reactivated, leaving or erased changes what their
-- items share: each takes a new version, so peers pull the change. Leaving
-- withdraws them; erasure also clears their words.
CREATE FUNCTION tb_dir_member_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.erased_at IS NOT NULL AND OLD.erased_at IS NULL THEN
        UPDATE dir_items SET state = 'withdrawn', text = 'erased', area = NULL,
                             availability = NULL, updated_by = NEW.updated_by
         WHERE member_account = NEW.account_id;
    ELSIF NEW.status = 'left' THEN
        UPDATE dir_items SET state = 'withdrawn', updated_by = NEW.updated_by
         WHERE member_account = NEW.account_id AND state = 'active';
    ELSE
        UPDATE dir_items SET updated_by = NEW.updated_by
         WHERE member_account = NEW.account_id AND state = 'active';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER members_dir AFTER UPDATE OF status, erased_at ON members
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       OR OLD.erased_at IS DISTINCT FROM NEW.erased_at)
    EXECUTE FUNCTION tb_dir_member_changed();

-- Items past their date expire (and so leave the peers' directories).
CREATE FUNCTION tb_dir_expire() RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    UPDATE dir_items SET state = 'expired', updated_by = 'expiry'
     WHERE state = 'active' AND expires_on < current_date;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- What peers see of an item: it is shared with the federation, active, in
-- date, a broker approved it as it reads now, and its member is active.
CREATE FUNCTION tb_dir_shared(i dir_items, member_status text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT i.state = 'active' AND i.visibility = 'federation' AND i.approved_at IS NOT NULL
           AND member_status = 'active' AND i.expires_on >= current_date
$$;

CREATE FUNCTION tb_dir_item_json(i dir_items) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', i.id, 'handle', i.handle, 'kind', i.kind, 'category', i.category,
        'text', i.text, 'area', i.area, 'availability', i.availability,
        'visibility', i.visibility, 'expires_on', i.expires_on, 'state', i.state,
        'member', m.number, 'member_label', tb_account_label(i.member_account),
        'shared', tb_dir_shared(i, m.status),
        'review', CASE WHEN i.visibility <> 'federation' THEN NULL
                       WHEN i.approved_at IS NULL THEN 'waiting' ELSE 'approved' END,
        'approved_by', i.approved_by, 'approved_at', i.approved_at, 'version', i.version,
        'created_at', i.created_at, 'updated_at', i.updated_at, 'updated_by', i.updated_by)
      FROM members m WHERE m.account_id = i.member_account
$$;

CREATE FUNCTION tb_dir_get(want_kind text, want bigint) RETURNS dir_items
LANGUAGE plpgsql STABLE AS $$
DECLARE
    i dir_items;
BEGIN
    SELECT * INTO i FROM dir_items WHERE id = want AND kind = want_kind;
    IF NOT FOUND THEN
        PERFORM tb_raise('item_not_found', format('there is no %s %s', want_kind, want));
    END IF;
    RETURN i;
END $$;

CREATE FUNCTION tb_dir_category(c text) RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM dir_categories WHERE code = lower(c)) THEN
        PERFORM tb_raise('invalid_category', format(
            '%s is not a directory category; use one of: %s', c,
            (SELECT string_agg(code, ', ' ORDER BY position) FROM dir_categories)));
    END IF;
    RETURN lower(c);
END $$;

CREATE FUNCTION tb_dir_expiry(d date) RETURNS date LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF d IS NULL THEN
        RETURN current_date + 180;
    END IF;
    IF d < current_date OR d > current_date + 730 THEN
        PERFORM tb_raise('invalid_date', 'expires_on must be between today and two years ahead');
    END IF;
    RETURN d;
END $$;

-- An item shared with the federation, as it now reads, is approved by the
-- one who wrote it when no review is asked for ([directory] review = no);
-- otherwise it waits for a broker (tb_dir_approve), and so does every
-- change to what peers would see of it.
CREATE FUNCTION tb_dir_add(want_kind text, p jsonb, actor text, review boolean) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    m members := tb_active_member((p->>'member')::bigint, 'member');
    i dir_items;
    shared boolean := coalesce(p->>'visibility', 'bank') = 'federation' AND NOT review;
BEGIN
    INSERT INTO dir_items (handle, member_account, kind, category, text, area, availability,
                           visibility, expires_on, created_by, updated_by, approved_by,
                           approved_at)
         VALUES (left(replace(gen_random_uuid()::text, '-', ''), 12), m.account_id, want_kind,
                 tb_dir_category(p->>'category'), p->>'text', p->>'area', p->>'availability',
                 coalesce(p->>'visibility', 'bank'),
                 tb_dir_expiry((p->>'expires_on')::date), actor, actor,
                 CASE WHEN shared THEN actor END, CASE WHEN shared THEN now() END)
      RETURNING * INTO i;
    RETURN tb_dir_item_json(i);
END $$;

CREATE FUNCTION tb_dir_update(want_kind text, want bigint, p jsonb, actor text, review boolean)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    i dir_items := tb_dir_get(want_kind, want);
    n dir_items := i;
BEGIN
    IF i.state = 'withdrawn' THEN
        PERFORM tb_raise('item_withdrawn', format('%s %s was withdrawn; add a new one',
                                                  want_kind, want));
    END IF;
    IF p ? 'category' THEN
        n.category := tb_dir_category(p->>'category');
    END IF;
    n.text := coalesce(p->>'text', i.text);
    IF p ? 'area' THEN
        n.area := p->>'area';
    END IF;
    IF p ? 'availability' THEN
        n.availability := p->>'availability';
    END IF;
    n.visibility := coalesce(p->>'visibility', i.visibility);
    IF p ? 'expires_on' THEN
        n.expires_on := tb_dir_expiry((p->>'expires_on')::date);
        n.state := 'active';  -- a new date brings an expired item back
    END IF;
    IF n.visibility <> 'federation' THEN
        n.approved_by := NULL;
        n.approved_at := NULL;
    ELSIF NOT review THEN
        n.approved_by := actor;
        n.approved_at := now();
    ELSIF (n.category, n.text, n.area, n.availability, i.visibility)
          IS DISTINCT FROM (i.category, i.text, i.area, i.availability, 'federation') THEN
        n.approved_by := NULL;  -- what peers would see changed: a broker looks again
        n.approved_at := NULL;
    END IF;
    UPDATE dir_items SET category = n.category, text = n.text, area = n.area,
                         availability = n.availability, visibility = n.visibility,
                         expires_on = n.expires_on, state = n.state, updated_by = actor,
                         approved_by = n.approved_by, approved_at = n.approved_at
     WHERE id = i.id RETURNING * INTO i;
    RETURN tb_dir_item_json(i);
END $$;

-- A broker lets an item waiting for review leave the bank, as it reads now;
-- read_version, when given, is the version they read, and an item changed
-- since is not approved.
CREATE FUNCTION tb_dir_approve(want_kind text, want bigint, actor text, read_version bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    i dir_items := tb_dir_get(want_kind, want);
BEGIN
    -- An edit that commits meanwhile is seen, not approved unread.
    SELECT * INTO i FROM dir_items WHERE id = i.id FOR UPDATE;
    IF read_version IS NOT NULL AND read_version <> i.version THEN
        PERFORM tb_raise('item_changed', format(
            '%s %s changed since version %s (it is at %s); read it again before approving',
            want_kind, want, read_version, i.version));
    END IF;
    IF i.state = 'withdrawn' THEN
        PERFORM tb_raise('item_withdrawn', format('%s %s was withdrawn; add a new one',
                                                  want_kind, want));
    END IF;
    IF i.visibility <> 'federation' OR i.approved_at IS NOT NULL THEN
        PERFORM tb_raise('item_not_waiting', format(
            '%s %s is not waiting for review (%s)', want_kind, want,
            CASE WHEN i.visibility <> 'federation' THEN 'it is not shared with the federation'
                 ELSE format('approved by %s', i.approved_by) END));
    END IF;
    UPDATE dir_items SET approved_by = actor, approved_at = now(), updated_by = actor
     WHERE id = i.id RETURNING * INTO i;
    RETURN tb_dir_item_json(i);
END $$;

CREATE FUNCTION tb_dir_withdraw(want_kind text, want bigint, actor text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    i dir_items := tb_dir_get(want_kind, want);
BEGIN
    IF i.state <> 'withdrawn' THEN
        UPDATE dir_items SET state = 'withdrawn', updated_by = actor
         WHERE id = i.id RETURNING * INTO i;
    END IF;
    RETURN tb_dir_item_json(i);
END $$;

CREATE FUNCTION tb_dir_show(want_kind text, want bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT tb_dir_item_json(tb_dir_get(want_kind, want))
$$;

-- A member's (or everyone's) items of one kind, newest first: the active
-- ones, those waiting for a broker's approval, or all.
CREATE FUNCTION tb_dir_list(want_kind text, num bigint, want_state text, cursor bigint,
                            lim int) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    acct bigint;
BEGIN
    PERFORM tb_dir_expire();
    IF num IS NOT NULL THEN
        acct := (tb_find_member(num)).account_id;
    END IF;
    RETURN (WITH page AS (
        SELECT * FROM dir_items
         WHERE kind = want_kind AND (acct IS NULL OR member_account = acct)
           AND CASE want_state
                   WHEN 'all' THEN true
                   WHEN 'waiting' THEN visibility = 'federation' AND approved_at IS NULL
                                       AND state = 'active'
                   ELSE state = 'active' END
           AND (cursor IS NULL OR id < cursor)
         ORDER BY id DESC LIMIT lim)
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(tb_dir_item_json(p) ORDER BY p.id DESC)
                             FROM page p), '[]'),
        'next_cursor', (SELECT CASE WHEN count(*) = lim THEN min(id)::text END FROM page)));
END $$;

CREATE FUNCTION tb_dir_categories() RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('items', jsonb_agg(jsonb_build_object('code', code,
                                                                   'label', label)
                                                ORDER BY position))
      FROM dir_categories
$$;

-- ---- sync ---------------------------------------------------------------

-- For a peer bank: every change since its cursor, oldest first, as shared
-- items or withdrawals. Nothing that names the member leaves.
CREATE FUNCTION tb_dir_page(to_peer text, since bigint, lim int) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    items json;
    last bigint;
    n int;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM fed_peers WHERE peer = to_peer AND kind = 'bank' AND exchanges) THEN
        RETURN json_build_object('since', since, 'next', since, 'more', false,
                                 'items', '[]'::json);
    END IF;
    PERFORM tb_dir_expire();
    -- At most lim items, and the page ends where their JSON text passes
    -- 512 KiB, so that it fits the frame (1 MiB) whatever the texts hold.
    -- (json, not jsonb: the page is written once, as text, and not read.)
    SELECT coalesce(json_agg(item ORDER BY version), '[]'), max(version), count(*)
      INTO items, last, n
      FROM (SELECT version, item, sum(size) OVER (ORDER BY version) - size AS before
              FROM (SELECT version, item, octet_length(item::text) AS size
                      FROM (SELECT q.version, CASE WHEN shared THEN json_build_object(
                                       'handle', handle, 'kind', kind, 'category', category,
                                       'text', text, 'area', coalesce(area, ''),
                                       'availability', coalesce(availability, ''),
                                       'expires_on', expires_on::text, 'version', version)
                                   ELSE json_build_object('handle', handle, 'withdrawn', true,
                                                          'version', version) END AS item
                              FROM (SELECT i.*, tb_dir_shared(i, m.status) AS shared
                                      FROM dir_items i
                                      JOIN members m ON m.account_id = i.member_account
                                     WHERE i.version > since ORDER BY i.version LIMIT lim) q) a
                   ) z) b
     WHERE before < 524288;
    RETURN json_build_object('since', since, 'next', coalesce(last, since),
                             'more', EXISTS (SELECT 1 FROM dir_items
                                              WHERE version > coalesce(last, since)),
                             'items', items);
END $$;

-- At the pulling bank: one page from a peer, in one transaction. A page
-- that does not follow our cursor is ignored (a duplicate or a stale
-- answer); one whose own cursor does not follow its items is refused;
-- items that are malformed, or that would take the peer past its share
-- (fed_limits.max_directory_items), are skipped. Never raises on what the
-- peer sent. Returns {cursor, more, applied, dropped, refused}.
--
-- The items are checked and their words made before the peer's row is
-- locked: the lock is held only while they are written.
CREATE FUNCTION tb_dir_apply(from_peer text, page jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    st fed_peers;
    since numeric;
    added int;
    changed int;
    gone int;
    candidates int;
    room int;
    not_objects boolean;
    out_of_step boolean;
    top numeric;
    staged dir_remote[];
    gone_handles text[];
BEGIN
    -- A page is a copy of the peer's, and the cursor moves with it: one
    -- lost in a crash is pulled again, so its commit need not wait for the
    -- disk.
    SET LOCAL synchronous_commit = off;
    IF jsonb_typeof(page->'since') <> 'number' OR jsonb_typeof(page->'next') <> 'number'
       OR jsonb_typeof(page->'items') <> 'array' THEN
        RETURN jsonb_build_object('cursor', tb_dir_cursor(from_peer), 'more', false,
                                  'applied', 0);
    END IF;
    since := (page->>'since')::numeric;
    -- The page's cursor is its last item's version (since, when it is
    -- empty), and every item comes after since.
    SELECT bool_or(jsonb_typeof(x) <> 'object'),
           bool_or(CASE WHEN length(x->>'version') BETWEEN 1 AND 18 AND x->>'version' !~ '[^0-9]'
                        THEN (x->>'version')::numeric <= since ELSE true END),
           max(CASE WHEN length(x->>'version') BETWEEN 1 AND 18 AND x->>'version' !~ '[^0-9]'
                    THEN (x->>'version')::numeric END)
      INTO not_objects, out_of_step, top
      FROM jsonb_array_elements(page->'items') x;
    -- Each item's fields read once (text, whatever JSON they are), its date
    -- once; the last of a handle's, if it comes twice; each one kept as the
    -- row it will be, in dir_remote's column order.
    WITH it AS MATERIALIZED (
        SELECT i.*, tb_safe_date(i.expires_on) AS expires
          FROM ROWS FROM (jsonb_to_recordset(page->'items')
                          AS (handle text, withdrawn text, kind text, category text, text text,
                              area text, availability text, expires_on text, version text))
               WITH ORDINALITY AS i(handle, withdrawn, kind, category, text, area,
                                    availability, expires_on, version, n)
         WHERE NOT coalesce(not_objects, false) AND NOT coalesce(out_of_step, false)),
    c AS (
        SELECT DISTINCT ON (it.handle) it.*
          FROM it
         WHERE coalesce(it.withdrawn, 'false') <> 'true'
           -- (a length and a class left out: the same as an anchored
           -- pattern, and cheaper, over thousands of items a page)
           AND length(handle) BETWEEN 1 AND 40 AND handle !~ '[^A-Za-z0-9]'
           AND kind IN ('offer', 'request')
           AND length(category) BETWEEN 1 AND 40 AND category !~ '[^a-z-]'
           AND length(coalesce(text, '')) BETWEEN 1 AND 500
           AND tb_plain(text) AND text !~ E'[\\n\\t]'
           AND length(coalesce(area, '')) <= 4 AND coalesce(area, '') !~ '[^A-Z0-9]'
           AND length(coalesce(availability, '')) <= 300
           AND tb_plain(availability)
           -- two years ahead, at most, of the peer's today, which may be ours + 1
           AND expires BETWEEN current_date AND current_date + 731
         ORDER BY it.handle, n DESC)
    SELECT ARRAY(SELECT ROW(from_peer, c.handle, c.kind, c.category, c.text, nullif(c.area, ''),
                            nullif(c.availability, ''), c.expires, c.version::bigint, now(),
                            tb_dir_tsv(c.kind, c.category, l.label, c.text,
                                       nullif(c.availability, ''), nullif(c.area, '')))::dir_remote
                   FROM c LEFT JOIN dir_categories l ON l.code = c.category ORDER BY c.n),
           ARRAY(SELECT handle FROM it WHERE it.withdrawn = 'true')
      INTO staged, gone_handles;

    SELECT * INTO st FROM fed_peers WHERE peer = from_peer AND kind = 'bank' AND exchanges
       FOR UPDATE;
    IF NOT FOUND OR since <> st.dir_cursor THEN
        RETURN jsonb_build_object('cursor', st.dir_cursor, 'more', false, 'applied', 0);
    END IF;
    IF not_objects THEN
        RETURN jsonb_build_object('cursor', st.dir_cursor, 'more', false, 'applied', 0,
                                  'refused', 'its items are not all objects');
    END IF;
    IF out_of_step OR (page->>'next')::numeric <> coalesce(top, since) THEN
        RETURN jsonb_build_object('cursor', st.dir_cursor, 'more', false, 'applied', 0,
                                  'refused', 'its cursor does not follow its items');
    END IF;
    DELETE FROM dir_remote r WHERE r.peer = from_peer AND r.handle = ANY (gone_handles);
    GET DIAGNOSTICS gone = ROW_COUNT;
    room := (SELECT max_directory_items FROM fed_limits) - (st.dir_held - gone);
    WITH s AS (
        SELECT x.*, NOT EXISTS (SELECT 1 FROM dir_remote r WHERE r.peer = from_peer
                                                           AND r.handle = x.handle) AS fresh
          FROM unnest(staged) WITH ORDINALITY AS x(peer, handle, kind, category, text, area,
                                                   availability, expires_on, version,
                                                   received_at, tsv, n)),
    k AS (
        SELECT s.*, count(*) FILTER (WHERE fresh) OVER (ORDER BY n) AS nth FROM s),
    -- New items are inserted, known ones changed: the peer's row, locked
    -- above, keeps another page of the same peer from racing this one.
    ins AS (
        INSERT INTO dir_remote (peer, handle, kind, category, text, area, availability,
                                expires_on, version, received_at, tsv)
        SELECT peer, handle, kind, category, text, area, availability, expires_on, version,
               received_at, tsv
          FROM k
         WHERE fresh AND nth <= room
        RETURNING 1),
    upd AS (
        UPDATE dir_remote r SET
            kind = k.kind, category = k.category, text = k.text, area = k.area,
            availability = k.availability, expires_on = k.expires_on, version = k.version,
            received_at = k.received_at, tsv = k.tsv
          FROM k
         WHERE NOT k.fresh AND r.peer = from_peer AND r.handle = k.handle
        RETURNING 1)
    SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM ins), (SELECT count(*) FROM upd)
      INTO candidates, added, changed;
    UPDATE fed_peers SET dir_cursor = greatest((page->>'next')::bigint, dir_cursor),
                         dir_synced_at = now(), dir_held = dir_held - gone + added
     WHERE peer = from_peer;
    RETURN jsonb_build_object('cursor', greatest((page->>'next')::bigint, st.dir_cursor),
                              'more', coalesce((page->>'more')::text = 'true', false),
                              'applied', added + changed, 'dropped', candidates - added - changed);
END $$;

CREATE FUNCTION tb_dir_cursor(from_peer text) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT dir_cursor FROM fed_peers WHERE peer = from_peer AND kind = 'bank'
$$;

-- ---- search and matching -----------------------------------------------

-- Own items (all active ones: brokers see their bank's too) and every
-- peer's shared ones, by relevance to q; filters may be NULL. Paged by
-- offset: relevance has no stable key.
--
-- Words rank at most `candidates` matches from each side, the first the
-- GIN index yields: a common word matches tens of thousands of a million
-- cached items, and ranking each one costs a heap visit apiece, more than a
-- broker should wait. 'broad' says that more matched than were ranked, so
-- that the broker narrows the search. Kind, category and area narrow it
-- inside the same index (tb_dir_keys), so that the items visited are the
-- matches. Without words, a browse lists every match, newest first.
CREATE FUNCTION tb_dir_search(q text, cat text, area_prefix text, want_bank text,
                              want_kind text, own_bank text, off int, lim int)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    tq tsquery := CASE WHEN coalesce(q, '') <> '' THEN websearch_to_tsquery('english', q) END;
    keys tsquery := tb_dir_keys_query(want_kind, cat, area_prefix);
    fq tsquery := CASE WHEN keys IS NULL OR numnode(tq) = 0 THEN tq ELSE tq && keys END;
    candidates CONSTANT int := 2000;
    bound int := CASE WHEN tq IS NOT NULL THEN candidates END;
    result jsonb;
BEGIN
    PERFORM tb_dir_expire();
    WITH own AS (
        SELECT own_bank AS bank, i.handle, i.kind, i.category, i.text, i.area,
               i.availability, i.expires_on, m.number AS member, i.tsv, i.updated_at AS at
          FROM dir_items i JOIN members m ON m.account_id = i.member_account
         WHERE i.state = 'active' AND m.status = 'active' AND i.expires_on >= current_date
           AND (tq IS NULL OR i.tsv @@ fq) AND (cat IS NULL OR i.category = cat)
           AND (area_prefix IS NULL OR i.area LIKE upper(area_prefix) || '%')
           AND (want_bank IS NULL OR want_bank = own_bank)
           AND (want_kind IS NULL OR i.kind = want_kind)
         LIMIT bound + 1),
    remote AS (
        SELECT r.peer AS bank, r.handle, r.kind, r.category, r.text, r.area, r.availability,
               r.expires_on, NULL::bigint AS member, r.tsv, r.received_at AS at
          FROM dir_remote r
         WHERE r.expires_on >= current_date
           AND (tq IS NULL OR r.tsv @@ fq) AND (cat IS NULL OR r.category = cat)
           AND (area_prefix IS NULL OR r.area LIKE upper(area_prefix) || '%')
           AND (want_bank IS NULL OR r.peer = want_bank)
           AND (want_kind IS NULL OR r.kind = want_kind)
         LIMIT bound + 1),
    hits AS (
        SELECT h.*, CASE WHEN tq IS NULL THEN 0 ELSE ts_rank(h.tsv, tq) END AS rank
          FROM ((SELECT * FROM own LIMIT bound) UNION ALL (SELECT * FROM remote LIMIT bound)) h),
    page AS (SELECT * FROM hits ORDER BY rank DESC, at DESC, bank, handle
              LIMIT lim + 1 OFFSET off)
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(jsonb_build_object(
                     'bank', bank, 'handle', handle, 'kind', kind, 'category', category,
                     'text', text, 'area', area, 'availability', availability,
                     'expires_on', expires_on, 'member', member,
                     'rank', round(rank::numeric, 4))
                   ORDER BY rank DESC, at DESC, bank, handle)
                     FROM (SELECT * FROM page ORDER BY rank DESC, at DESC, bank, handle
                            LIMIT lim) p), '[]'),
        'next_cursor', CASE WHEN (SELECT count(*) FROM page) > lim
                            THEN (off + lim)::text END,
        'broad', coalesce((SELECT count(*) FROM own) > bound
                          OR (SELECT count(*) FROM remote) > bound, false))
      INTO result;
    RETURN result;
END $$;

-- Offers that could meet one of our members' requests: own bank first,
-- then the peers'; within each, same category, then same area (district,
-- then the area's letters), then the words the request shares.
CREATE FUNCTION tb_dir_match(want bigint, own_bank text, off int, lim int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    r dir_items := tb_dir_get('request', want);
    words tsquery;
    letters text;
    result jsonb;
    required text[] := tb_check_required();
BEGIN
    PERFORM tb_dir_expire();
    -- Any of the request's words, not all of them.
    words := nullif(replace(plainto_tsquery('english', r.text)::text, '&', '|'), '')::tsquery;
    letters := substring(coalesce(r.area, '') FROM '^[A-Z]+');
    WITH offers AS (
        SELECT own_bank AS bank, i.handle, i.category, i.text, i.area, i.availability,
               i.expires_on, m.number AS member, 0 AS away, i.tsv
          FROM dir_items i JOIN members m ON m.account_id = i.member_account
         WHERE i.kind = 'offer' AND i.state = 'active' AND m.status = 'active'
           AND i.expires_on >= current_date AND i.member_account <> r.member_account
           -- help that needs a check is matched only to a member who holds one
           AND (cardinality(required) = 0
                OR tb_rule_safeguarding(i.category, i.member_account, current_date,
                                        required) IS NULL)
        UNION ALL
        SELECT x.peer, x.handle, x.category, x.text, x.area, x.availability, x.expires_on,
               NULL, 1, x.tsv
          FROM dir_remote x
         WHERE x.kind = 'offer' AND x.expires_on >= current_date),
    scored AS (
        SELECT o.*, (o.category = r.category)::int * 4
                    + CASE WHEN o.area = r.area THEN 2
                           WHEN letters <> '' AND substring(o.area FROM '^[A-Z]+') = letters
                           THEN 1 ELSE 0 END
                    + CASE WHEN words IS NULL THEN 0 ELSE ts_rank(o.tsv, words) END AS score
          FROM offers o
         WHERE o.category = r.category OR (words IS NOT NULL AND o.tsv @@ words)),
    page AS (SELECT * FROM scored ORDER BY away, score DESC, bank, handle
              LIMIT lim + 1 OFFSET off)
    SELECT jsonb_build_object(
        'request', tb_dir_item_json(r),
        'items', coalesce((SELECT jsonb_agg(jsonb_build_object(
                     'bank', bank, 'handle', handle, 'kind', 'offer', 'category', category,
                     'text', text, 'area', area, 'availability', availability,
                     'expires_on', expires_on, 'member', member,
                     'score', round(score::numeric, 4))
                   ORDER BY away, score DESC, bank, handle)
                     FROM (SELECT * FROM page ORDER BY away, score DESC, bank, handle
                            LIMIT lim) p), '[]'),
        'next_cursor', CASE WHEN (SELECT count(*) FROM page) > lim
                            THEN (off + lim)::text END,
        'withheld_for_safeguarding', (
            SELECT count(*) FROM dir_items i JOIN members m ON m.account_id = i.member_account
             WHERE i.kind = 'offer' AND i.state = 'active' AND m.status = 'active'
               AND i.category = r.category AND i.expires_on >= current_date
               AND tb_rule_safeguarding(i.category, i.member_account, current_date,
                                        required) IS NOT NULL))
      INTO result;
    RETURN result;
END $$;
