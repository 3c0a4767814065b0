-- Migration 6: the shared directory. Members' offers ("I can do lifts to
-- the surgery on Tuesdays") and requests ("I need help with a form"); those
-- shared with the federation are copied to every peer bank without who
-- made them: an opaque handle, a category, a short text, a postcode
-- district, availability. Peers pull changes since a version cursor.
-- Contact between members of two banks goes through their brokers.

CREATE TABLE dir_categories (
    code     text PRIMARY KEY,
    label    text NOT NULL,
    position int NOT NULL
);
INSERT INTO dir_categories (code, label, position) VALUES
    ('befriending', 'Befriending and company', 1),
    ('lifts', 'Lifts and transport', 2),
    ('shopping', 'Shopping and errands', 3),
    ('gardening', 'Gardening', 4),
    ('diy', 'DIY and repairs', 5),
    ('housework', 'Housework and cleaning', 6),
    ('cooking', 'Cooking and meals', 7),
    ('phone-support', 'Phone support and check-in calls', 8),
    ('paperwork', 'Paperwork and forms', 9),
    ('it-help', 'IT help: computers, phones, the internet', 10),
    ('tutoring', 'Tutoring and homework', 11),
    ('languages', 'Languages, conversation and translation', 12),
    ('arts-crafts', 'Arts and crafts, sewing and mending', 13),
    ('music', 'Music', 14),
    ('pet-care', 'Pet care and dog walking', 15),
    ('childcare', 'Childcare and family support', 16),
    ('health-wellbeing', 'Health and wellbeing, exercise and walks', 17),
    ('events', 'Events and group activities', 18),
    ('other', 'Other', 99);

-- Every change to an item takes the next version: peers pull what changed
-- since the last version they saw.
CREATE SEQUENCE dir_version;

CREATE TABLE dir_items (
    id             bigserial PRIMARY KEY,
    handle         text NOT NULL UNIQUE,   -- opaque; means nothing elsewhere
    member_account bigint NOT NULL REFERENCES accounts (id),
    kind           text NOT NULL CHECK (kind IN ('offer', 'request')),
    category       text NOT NULL REFERENCES dir_categories (code),
    text           text NOT NULL,
    area           text,
    availability   text,
    visibility     text NOT NULL CHECK (visibility IN ('bank', 'federation')),
    expires_on     date NOT NULL,
    state          text NOT NULL DEFAULT 'active'
                   CHECK (state IN ('active', 'withdrawn', 'expired')),
    version        bigint NOT NULL DEFAULT nextval('dir_version'),
    created_by     text NOT NULL,
    updated_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    tsv            tsvector
);
CREATE INDEX dir_items_version ON dir_items (version);
CREATE INDEX dir_items_member ON dir_items (member_account, id);
CREATE INDEX dir_items_tsv ON dir_items USING gin (tsv);

-- What a peer bank shares, as last pulled.
CREATE TABLE dir_remote (
    peer         text NOT NULL REFERENCES fed_peers (peer),
    handle       text NOT NULL,
    kind         text NOT NULL,
    category     text NOT NULL,
    text         text NOT NULL,
    area         text,
    availability text,
    expires_on   date NOT NULL,
    version      bigint NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    tsv          tsvector NOT NULL,
    PRIMARY KEY (peer, handle)
);
CREATE INDEX dir_remote_tsv ON dir_remote USING gin (tsv);
CREATE INDEX dir_remote_category ON dir_remote (category, area);
CREATE INDEX dir_remote_handle ON dir_remote (handle);

ALTER TABLE fed_peers ADD COLUMN dir_cursor bigint NOT NULL DEFAULT 0;
ALTER TABLE fed_peers ADD COLUMN dir_synced_at timestamptz;

-- What search matches: the category's words, the text, the availability.
CREATE FUNCTION tb_dir_tsv(category text, text text, availability text) RETURNS tsvector
LANGUAGE sql STABLE AS $$
    SELECT to_tsvector('english', coalesce((SELECT label FROM dir_categories WHERE code = category),
                                           category)
                                  || ' ' || text || ' ' || coalesce(availability, ''))
$$;

CREATE FUNCTION tb_dir_item_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.tsv := tb_dir_tsv(NEW.category, NEW.text, NEW.availability);
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

CREATE FUNCTION tb_dir_item_json(i dir_items) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', i.id, 'handle', i.handle, 'kind', i.kind, 'category', i.category,
        'text', i.text, 'area', i.area, 'availability', i.availability,
        'visibility', i.visibility, 'expires_on', i.expires_on, 'state', i.state,
        'member', m.number, 'member_label', tb_account_label(i.member_account),
        'shared', i.state = 'active' AND i.visibility = 'federation' AND m.status = 'active'
                  AND i.expires_on >= current_date,
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

CREATE FUNCTION tb_dir_add(want_kind text, p jsonb, actor text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    m members := tb_active_member((p->>'member')::bigint, 'member');
    i dir_items;
BEGIN
    INSERT INTO dir_items (handle, member_account, kind, category, text, area, availability,
                           visibility, expires_on, created_by, updated_by)
         VALUES (left(replace(gen_random_uuid()::text, '-', ''), 12), m.account_id, want_kind,
                 tb_dir_category(p->>'category'), p->>'text', p->>'area', p->>'availability',
                 coalesce(p->>'visibility', 'bank'),
                 tb_dir_expiry((p->>'expires_on')::date), actor, actor)
      RETURNING * INTO i;
    RETURN tb_dir_item_json(i);
END $$;

CREATE FUNCTION tb_dir_update(want_kind text, want bigint, p jsonb, actor text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    i dir_items := tb_dir_get(want_kind, want);
BEGIN
    IF i.state = 'withdrawn' THEN
        PERFORM tb_raise('item_withdrawn', format('%s %s was withdrawn; add a new one',
                                                  want_kind, want));
    END IF;
    UPDATE dir_items SET
        category = CASE WHEN p ? 'category' THEN tb_dir_category(p->>'category')
                        ELSE category END,
        text = coalesce(p->>'text', text),
        area = CASE WHEN p ? 'area' THEN p->>'area' ELSE area END,
        availability = CASE WHEN p ? 'availability' THEN p->>'availability'
                            ELSE availability END,
        visibility = coalesce(p->>'visibility', visibility),
        expires_on = CASE WHEN p ? 'expires_on' THEN tb_dir_expiry((p->>'expires_on')::date)
                          ELSE expires_on END,
        -- A new date brings an expired item back.
        state = CASE WHEN p ? 'expires_on' THEN 'active' ELSE state END,
        updated_by = actor
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

-- A member's (or everyone's) items of one kind, newest first; active ones
-- unless every state is asked for.
CREATE FUNCTION tb_dir_list(want_kind text, num bigint, all_states boolean, cursor bigint,
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
           AND (all_states OR state = 'active') AND (cursor IS NULL OR id < cursor)
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
CREATE FUNCTION tb_dir_page(to_peer text, since bigint, lim int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    items jsonb;
    last bigint;
    n int;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM fed_peers WHERE peer = to_peer AND kind = 'bank') THEN
        RETURN jsonb_build_object('since', since, 'next', since, 'more', false,
                                  'items', '[]'::jsonb);
    END IF;
    PERFORM tb_dir_expire();
    SELECT coalesce(jsonb_agg(CASE WHEN shared THEN jsonb_build_object(
                   'handle', handle, 'kind', kind, 'category', category, 'text', text,
                   'area', coalesce(area, ''), 'availability', coalesce(availability, ''),
                   'expires_on', expires_on::text, 'version', version)
               ELSE jsonb_build_object('handle', handle, 'withdrawn', true,
                                       'version', version) END ORDER BY version), '[]'),
           max(version), count(*)
      INTO items, last, n
      FROM (SELECT i.*, i.state = 'active' AND i.visibility = 'federation'
                        AND m.status = 'active' AND i.expires_on >= current_date AS shared
              FROM dir_items i JOIN members m ON m.account_id = i.member_account
             WHERE i.version > since ORDER BY i.version LIMIT lim) q;
    RETURN jsonb_build_object('since', since, 'next', coalesce(last, since),
                              'more', n = lim, 'items', items);
END $$;

-- At the pulling bank: one page from a peer, in one transaction. A page
-- that does not follow our cursor is ignored (a duplicate or a stale
-- answer); items that are malformed are skipped. Never raises on what the
-- peer sent. Returns {cursor, more, applied}.
CREATE FUNCTION tb_dir_apply(from_peer text, page jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    st fed_peers;
    n int := 0;
    next_cursor bigint;
BEGIN
    SELECT * INTO st FROM fed_peers WHERE peer = from_peer AND kind = 'bank' FOR UPDATE;
    IF NOT FOUND OR jsonb_typeof(page->'since') <> 'number'
       OR (page->>'since')::numeric <> st.dir_cursor
       OR jsonb_typeof(page->'next') <> 'number' OR jsonb_typeof(page->'items') <> 'array' THEN
        RETURN jsonb_build_object('cursor', st.dir_cursor, 'more', false, 'applied', 0);
    END IF;
    next_cursor := least((page->>'next')::numeric, 9e18)::bigint;
    DELETE FROM dir_remote r
     USING jsonb_array_elements(page->'items') AS it(x)
     WHERE r.peer = from_peer AND r.handle = it.x->>'handle'
       AND (it.x->>'withdrawn')::text = 'true';
    INSERT INTO dir_remote AS r (peer, handle, kind, category, text, area, availability,
                                 expires_on, version, tsv)
    SELECT DISTINCT ON (x->>'handle')
           from_peer, x->>'handle', x->>'kind', x->>'category', x->>'text',
           nullif(x->>'area', ''), nullif(x->>'availability', ''),
           tb_safe_date(x->>'expires_on'), (x->>'version')::bigint,
           tb_dir_tsv(x->>'category', x->>'text', nullif(x->>'availability', ''))
      FROM jsonb_array_elements(page->'items') AS it(x)
     WHERE coalesce(x->>'withdrawn', 'false') <> 'true'
       AND coalesce(x->>'handle', '') ~ '^[A-Za-z0-9]{1,40}$'
       AND x->>'kind' IN ('offer', 'request')
       AND coalesce(x->>'category', '') ~ '^[a-z-]{1,40}$'
       AND length(coalesce(x->>'text', '')) BETWEEN 1 AND 500
       AND coalesce(x->>'text', '') !~ '[[:cntrl:]]'
       AND coalesce(x->>'area', '') ~ '^[A-Z0-9]{0,4}$'
       AND length(coalesce(x->>'availability', '')) <= 300
       AND tb_safe_date(x->>'expires_on') IS NOT NULL
       AND coalesce(x->>'version', '') ~ '^[0-9]{1,18}$'
    ON CONFLICT (peer, handle) DO UPDATE SET
        kind = EXCLUDED.kind, category = EXCLUDED.category, text = EXCLUDED.text,
        area = EXCLUDED.area, availability = EXCLUDED.availability,
        expires_on = EXCLUDED.expires_on, version = EXCLUDED.version,
        received_at = now(), tsv = EXCLUDED.tsv;
    GET DIAGNOSTICS n = ROW_COUNT;
    UPDATE fed_peers SET dir_cursor = greatest(next_cursor, dir_cursor), dir_synced_at = now()
     WHERE peer = from_peer;
    RETURN jsonb_build_object('cursor', greatest(next_cursor, st.dir_cursor),
                              'more', coalesce((page->>'more')::text = 'true', false),
                              'applied', n);
END $$;

CREATE FUNCTION tb_dir_cursor(from_peer text) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT dir_cursor FROM fed_peers WHERE peer = from_peer AND kind = 'bank'
$$;

-- ---- search and matching -----------------------------------------------

-- Own items (all active ones: brokers see their bank's too) and every
-- peer's shared ones, by relevance to q; filters may be NULL. Paged by
-- offset: relevance has no stable key.
CREATE FUNCTION tb_dir_search(q text, cat text, area_prefix text, want_bank text,
                              want_kind text, own_bank text, off int, lim int)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    tq tsquery := CASE WHEN coalesce(q, '') <> '' THEN websearch_to_tsquery('english', q) END;
    result jsonb;
BEGIN
    PERFORM tb_dir_expire();
    WITH hits AS (
        SELECT own_bank AS bank, i.handle, i.kind, i.category, i.text, i.area,
               i.availability, i.expires_on, m.number AS member,
               CASE WHEN tq IS NULL THEN 0 ELSE ts_rank(i.tsv, tq) END AS rank,
               i.updated_at AS at
          FROM dir_items i JOIN members m ON m.account_id = i.member_account
         WHERE i.state = 'active' AND m.status = 'active' AND i.expires_on >= current_date
           AND (tq IS NULL OR i.tsv @@ tq) AND (cat IS NULL OR i.category = cat)
           AND (area_prefix IS NULL OR i.area LIKE upper(area_prefix) || '%')
           AND (want_bank IS NULL OR want_bank = own_bank)
           AND (want_kind IS NULL OR i.kind = want_kind)
        UNION ALL
        SELECT r.peer, r.handle, r.kind, r.category, r.text, r.area, r.availability,
               r.expires_on, NULL,
               CASE WHEN tq IS NULL THEN 0 ELSE ts_rank(r.tsv, tq) END, r.received_at
          FROM dir_remote r
         WHERE r.expires_on >= current_date
           AND (tq IS NULL OR r.tsv @@ tq) AND (cat IS NULL OR r.category = cat)
           AND (area_prefix IS NULL OR r.area LIKE upper(area_prefix) || '%')
           AND (want_bank IS NULL OR r.peer = want_bank)
           AND (want_kind IS NULL OR r.kind = want_kind)),
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
                            THEN (off + lim)::text END)
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
                            THEN (off + lim)::text END)
      INTO result;
    RETURN result;
END $$;

-- ---- contact through brokers -------------------------------------------

-- A broker at the requesting bank asks for contact with the member behind a
-- peer's shared item, for one of their own members; the broker at the
-- providing bank reaches that member and accepts (saying how the members
-- will meet) or declines. Only the brokers' words travel.
CREATE TABLE dir_contacts (
    id             bigserial PRIMARY KEY,
    contact_id     text NOT NULL UNIQUE,       -- "<requesting bank>:k<id there>"
    side           text NOT NULL CHECK (side IN ('requester', 'provider')),
    peer           text NOT NULL REFERENCES fed_peers (peer),
    handle         text NOT NULL,              -- the item, at the providing bank
    member_account bigint REFERENCES accounts (id), -- requester: who asks; provider: the item's
    item_kind      text,
    item_category  text,
    item_text      text,
    message        text NOT NULL,              -- the requesting broker's words
    state          text NOT NULL CHECK (state IN ('open', 'accepted', 'declined')),
    reason         text,                       -- declined: declined, item_not_found
    answer         text,                       -- the providing broker's words
    sent_seq       bigint,
    recorded_by    text NOT NULL,
    decided_by     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    decided_at     timestamptz
);
CREATE INDEX dir_contacts_open ON dir_contacts (side, id) WHERE state = 'open';
CREATE SEQUENCE dir_contacts_number;
ALTER TABLE xb_exchanges ADD COLUMN contact text;

CREATE FUNCTION tb_contact_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.state = 'open' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'TB000', MESSAGE = 'contact_already_decided',
        DETAIL = format('contact %s was already %s', OLD.contact_id, OLD.state);
END $$;
CREATE TRIGGER dir_contact_decided BEFORE UPDATE OR DELETE ON dir_contacts
    FOR EACH ROW EXECUTE FUNCTION tb_contact_guard();

CREATE FUNCTION tb_contact_json(c dir_contacts) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', c.contact_id, 'side', c.side, 'peer', c.peer, 'handle', c.handle,
        'member', (SELECT number FROM members WHERE account_id = c.member_account),
        'member_label', CASE WHEN c.member_account IS NULL THEN NULL
                             ELSE tb_account_label(c.member_account) END,
        'item', jsonb_build_object('kind', c.item_kind, 'category', c.item_category,
                                   'text', c.item_text),
        'message', c.message, 'state', c.state, 'reason', c.reason, 'answer', c.answer,
        'sent', c.side = 'provider' OR c.sent_seq IS NOT NULL,
        'recorded_by', c.recorded_by, 'decided_by', c.decided_by,
        'created_at', c.created_at, 'decided_at', c.decided_at,
        'exchanges', coalesce((SELECT jsonb_agg(jsonb_build_object('id', x.xid, 'state', x.state)
                                                ORDER BY x.id)
                                 FROM xb_exchanges x WHERE x.contact = c.contact_id), '[]'))
$$;

CREATE FUNCTION tb_contact_find(want text) RETURNS dir_contacts LANGUAGE plpgsql STABLE AS $$
DECLARE
    c dir_contacts;
BEGIN
    SELECT * INTO c FROM dir_contacts WHERE contact_id = want;
    IF NOT FOUND THEN
        PERFORM tb_raise('contact_not_found', format('there is no contact %s', want));
    END IF;
    RETURN c;
END $$;

CREATE FUNCTION tb_contact_get(want text) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT tb_contact_json(tb_contact_find(want))
$$;

CREATE FUNCTION tb_contact_list(direction text, only_open boolean, cursor bigint, lim int)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH page AS (
        SELECT * FROM dir_contacts
         WHERE side = CASE direction WHEN 'outgoing' THEN 'requester' ELSE 'provider' END
           AND (NOT only_open OR state = 'open')
           AND (cursor IS NULL OR id < cursor)
         ORDER BY id DESC LIMIT lim)
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(tb_contact_json(p) ORDER BY p.id DESC) FROM page p),
                          '[]'),
        'next_cursor', (SELECT CASE WHEN count(*) = lim THEN min(id)::text END FROM page))
$$;

-- At the requesting bank: ask for contact; the request travels in the same
-- transaction.
CREATE FUNCTION tb_contact_request(p jsonb, actor text, own_bank text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    m members := tb_active_member((p->>'for')::bigint, 'member');
    item dir_remote;
    n int;
    c dir_contacts;
BEGIN
    IF p->>'bank' = own_bank OR (p->>'bank' IS NULL AND EXISTS (
           SELECT 1 FROM dir_items WHERE handle = p->>'handle')) THEN
        PERFORM tb_raise('own_item', format(
            '%s is this bank''s own item: arrange it here (tbctl offer list / request list)',
            p->>'handle'));
    END IF;
    SELECT count(*) INTO n FROM dir_remote
     WHERE handle = p->>'handle' AND (p->>'bank' IS NULL OR peer = p->>'bank');
    IF n = 0 THEN
        PERFORM tb_raise('item_not_found', format(
            'no peer bank shares an item %s (tbctl directory search finds them)',
            p->>'handle'));
    ELSIF n > 1 THEN
        PERFORM tb_raise('ambiguous_handle', format(
            'more than one bank shares an item %s; say which bank', p->>'handle'));
    END IF;
    SELECT * INTO item FROM dir_remote
     WHERE handle = p->>'handle' AND (p->>'bank' IS NULL OR peer = p->>'bank');
    INSERT INTO dir_contacts (contact_id, side, peer, handle, member_account, item_kind,
                              item_category, item_text, message, state, recorded_by)
         VALUES (own_bank || ':k' || nextval('dir_contacts_number'), 'requester', item.peer,
                 item.handle, m.account_id, item.kind, item.category, item.text,
                 p->>'message', 'open', actor)
      RETURNING * INTO c;
    UPDATE dir_contacts SET sent_seq = tb_fed_enqueue(c.peer, jsonb_build_object(
               'kind', 'dir_contact', 'items', jsonb_build_array(jsonb_build_object(
                   'contact_id', c.contact_id, 'handle', c.handle, 'message', c.message))))
     WHERE id = c.id RETURNING * INTO c;
    RETURN tb_contact_json(c);
END $$;

-- At the providing bank: a broker accepts or declines, with words for the
-- requesting bank.
CREATE FUNCTION tb_contact_answer(want text, accept boolean, words text, actor text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    c dir_contacts;
BEGIN
    SELECT * INTO c FROM dir_contacts WHERE contact_id = want AND side = 'provider' FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM tb_raise('contact_not_found', format(
            'there is no contact %s asked of this bank', want));
    END IF;
    IF c.state <> 'open' THEN
        PERFORM tb_raise('contact_already_decided', format('contact %s was already %s',
                                                           want, c.state));
    END IF;
    UPDATE dir_contacts SET state = CASE WHEN accept THEN 'accepted' ELSE 'declined' END,
                            reason = CASE WHEN accept THEN NULL ELSE 'declined' END,
                            answer = words, decided_by = actor, decided_at = now()
     WHERE id = c.id RETURNING * INTO c;
    PERFORM tb_fed_enqueue(c.peer, jsonb_build_object('kind', 'dir_contact_answer', 'items',
        jsonb_build_array(jsonb_build_object('contact_id', c.contact_id, 'accepted', accept,
                                             'reason', coalesce(c.reason, ''),
                                             'message', words))));
    RETURN tb_contact_json(c);
END $$;

-- At the providing bank, inside tb_fed_apply: take in a contact request.
-- Returns an answer when refused at once (no such shared item), else NULL.
CREATE FUNCTION tb_contact_on_receive(from_peer text, x jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    item dir_items;
    m members;
BEGIN
    IF coalesce(x->>'contact_id', '') !~ ('^' || from_peer || ':k[0-9]{1,18}$') THEN
        RETURN jsonb_build_object('contact_id', left(coalesce(x->>'contact_id', ''), 80),
                                  'accepted', false, 'reason', 'invalid_request', 'message', '');
    END IF;
    IF EXISTS (SELECT 1 FROM dir_contacts WHERE contact_id = x->>'contact_id') THEN
        RETURN NULL;
    END IF;
    SELECT * INTO item FROM dir_items WHERE handle = x->>'handle';
    SELECT * INTO m FROM members WHERE account_id = item.member_account;
    IF item.id IS NULL OR item.state <> 'active' OR item.visibility <> 'federation'
       OR m.status <> 'active' OR item.expires_on < current_date THEN
        RETURN jsonb_build_object('contact_id', x->>'contact_id', 'accepted', false,
                                  'reason', 'item_not_found', 'message', '');
    END IF;
    INSERT INTO dir_contacts (contact_id, side, peer, handle, member_account, item_kind,
                              item_category, item_text, message, state, recorded_by)
         VALUES (x->>'contact_id', 'provider', from_peer, item.handle, item.member_account,
                 item.kind, item.category, item.text, left(coalesce(x->>'message', ''), 500),
                 'open', 'federation:' || from_peer);
    RETURN NULL;
END $$;

-- At the requesting bank, inside tb_fed_apply: the providing bank answered.
CREATE FUNCTION tb_contact_on_answer(from_peer text, x jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE dir_contacts
       SET state = CASE WHEN (x->>'accepted')::text = 'true' THEN 'accepted' ELSE 'declined' END,
           reason = CASE WHEN (x->>'accepted')::text = 'true' THEN NULL
                         ELSE left(coalesce(nullif(x->>'reason', ''), 'declined'), 40) END,
           answer = left(nullif(x->>'message', ''), 500),
           decided_by = 'federation:' || from_peer, decided_at = now()
     WHERE contact_id = x->>'contact_id' AND side = 'requester' AND peer = from_peer
       AND state = 'open';
END $$;

-- An exchange from an accepted contact, recorded at the payer's bank: the
-- requesting bank when the item was an offer (its member was helped), the
-- providing bank when it was a request. No one is retyped: the proposal
-- names the contact, and the other bank knows its own member from it.
CREATE FUNCTION tb_xb_record_contact(p jsonb, actor text, default_floor bigint, own_bank text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    key text := coalesce(p->>'idempotency_key', gen_random_uuid()::text);
    c dir_contacts := tb_contact_find(p->>'contact');
    payer_account bigint;
    x jsonb;
BEGIN
    IF c.state <> 'accepted' THEN
        PERFORM tb_raise('contact_not_accepted', format(
            'contact %s is %s; an exchange needs an accepted contact', c.contact_id, c.state));
    END IF;
    IF (c.side = 'requester') <> (c.item_kind = 'offer') THEN
        PERFORM tb_raise('wrong_bank', format(
            'record this exchange at %s, the bank of the member who received the help',
            c.peer));
    END IF;
    payer_account := CASE WHEN c.side = 'requester' THEN c.member_account
                          ELSE (SELECT member_account FROM dir_items WHERE handle = c.handle) END;
    x := tb_xb_record(jsonb_build_object(
             'bank', c.peer,
             'payer', (SELECT number FROM members WHERE account_id = payer_account),
             'minutes', (p->>'minutes')::bigint,
             'category', coalesce(p->>'category', c.item_category),
             'description', coalesce(p->>'description', c.item_text),
             'performed_on', p->>'performed_on', 'contact', c.contact_id,
             'idempotency_key', key),
         actor, default_floor, own_bank);
    UPDATE xb_exchanges SET contact = c.contact_id WHERE xid = x->>'id' AND contact IS NULL;
    RETURN x || jsonb_build_object('contact', c.contact_id);
END $$;

-- At the earner's bank: who earns a proposed exchange. A plain proposal
-- names our member's number; one approving our claim names the claim; one
-- from an accepted contact names the contact. reason is set when the
-- proposal names what we cannot find.
CREATE FUNCTION tb_xb_proposed_earner(from_peer text, item jsonb, OUT em members,
                                      OUT claimed xb_claims, OUT reason text)
LANGUAGE plpgsql AS $$
DECLARE
    c dir_contacts;
BEGIN
    IF coalesce(item->>'claim', '') <> '' THEN
        SELECT * INTO claimed FROM xb_claims
         WHERE claim_id = item->>'claim' AND side = 'earner' AND xb_claims.peer = from_peer
           FOR UPDATE;
        SELECT * INTO em FROM members WHERE account_id = claimed.member_account;
        IF claimed.id IS NULL OR claimed.state <> 'open'
           OR claimed.minutes::text IS DISTINCT FROM item->>'minutes' THEN
            reason := 'claim_not_found';
        END IF;
    ELSIF coalesce(item->>'contact', '') <> '' THEN
        SELECT * INTO c FROM dir_contacts
         WHERE contact_id = item->>'contact' AND dir_contacts.peer = from_peer
           AND state = 'accepted';
        -- Our member earns: the one behind our offer, or the one who asked
        -- to help with the peer's request.
        IF c.id IS NULL OR (c.side = 'provider') <> (c.item_kind = 'offer') THEN
            reason := 'contact_not_found';
        ELSE
            SELECT * INTO em FROM members WHERE account_id = c.member_account;
        END IF;
    ELSIF item->>'earner' ~ '^[0-9]{1,18}$' THEN
        SELECT * INTO em FROM members WHERE number = (item->>'earner')::bigint;
    END IF;
END $$;

-- tb_xb_on_propose, finding the earner with tb_xb_proposed_earner: a
-- member's number, an approved claim of ours, or an accepted contact.
CREATE OR REPLACE FUNCTION tb_xb_on_propose(from_peer text, item jsonb, answer_seq bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    peer fed_peers;
    orig xb_exchanges;
    claimed xb_claims;
    proposed record;
    em members;
    clearing accounts;
    -- What a peer sends must never raise here: a number too big is no number.
    minutes bigint := CASE WHEN item->>'minutes' ~ '^[0-9]{1,12}$'
                           THEN (item->>'minutes')::bigint END;
    reason text;
    tid bigint;
    xid_id bigint;
BEGIN
    SELECT * INTO peer FROM fed_peers WHERE fed_peers.peer = from_peer;
    -- A peer names its own exchanges only; one it sent before gets the same
    -- answer again; a malformed one is refused without being recorded.
    IF coalesce(item->>'xid', '') !~ ('^' || from_peer || ':[0-9]{1,18}$') THEN
        RETURN jsonb_build_object('xid', left(coalesce(item->>'xid', ''), 80),
                                  'accepted', false, 'reason', 'invalid_request');
    END IF;
    SELECT * INTO orig FROM xb_exchanges WHERE xid = item->>'xid';
    IF FOUND THEN
        RETURN jsonb_build_object('xid', orig.xid, 'accepted', orig.state = 'settled',
                                  'reason', coalesce(orig.reason, ''));
    END IF;
    orig := NULL;
    IF tb_safe_date(item->>'performed_on') IS NULL OR tb_safe_date(item->>'performed_on') > current_date + 1
       OR coalesce(item->>'category', '') !~ '^[^[:cntrl:]]{1,40}$' THEN
        RETURN jsonb_build_object('xid', item->>'xid', 'accepted', false,
                                  'reason', 'invalid_request');
    END IF;
    IF coalesce(item->>'reverses', '') <> '' THEN
        -- A reversal: the earner is the payer of the exchange it reverses.
        SELECT * INTO orig FROM xb_exchanges
         WHERE xid = item->>'reverses' AND side = 'payer' AND xb_exchanges.peer = from_peer;
        SELECT * INTO em FROM members WHERE account_id = orig.member_account;
        IF orig.id IS NULL OR orig.state <> 'settled' THEN
            reason := 'exchange_not_found';
        ELSIF EXISTS (SELECT 1 FROM xb_exchanges WHERE reverses = orig.xid) THEN
            reason := 'already_reversed';
        END IF;
    ELSE
        proposed := tb_xb_proposed_earner(from_peer, item);
        em := proposed.em;
        claimed := proposed.claimed;
        reason := proposed.reason;
    END IF;
    IF reason IS NOT NULL THEN
        NULL;
    ELSIF peer.kind <> 'bank' OR peer.clearing_account IS NULL THEN
        reason := 'unknown_bank';
    ELSIF em.number IS NULL OR em.erased_at IS NOT NULL THEN
        reason := 'member_not_found';
    ELSIF minutes IS NULL OR minutes <= 0 THEN
        reason := 'invalid_hours';
    ELSE
        PERFORM tb_lock_accounts(ARRAY[peer.clearing_account, em.account_id]);
        SELECT * INTO em FROM members WHERE number = em.number;
        SELECT * INTO clearing FROM accounts WHERE id = peer.clearing_account;
        -- Reversals are corrections: the member's status does not matter.
        IF em.status <> 'active' AND coalesce(item->>'reverses', '') = '' THEN
            reason := 'member_inactive';
        ELSIF clearing.balance_minutes - minutes < clearing.floor_minutes THEN
            reason := 'exposure_limit';
        END IF;
    END IF;
    xid_id := nextval('xb_exchanges_id_seq');
    IF reason IS NULL THEN
        INSERT INTO transfers (kind, payer_account, earner_account, minutes, category,
                               description, performed_on, recorded_by, idempotency_key,
                               fingerprint, xb_id)
             VALUES ('exchange', peer.clearing_account, em.account_id, minutes,
                     item->>'category', 'from a ' || from_peer || ' member',
                     (item->>'performed_on')::date, 'federation:' || from_peer,
                     'xb:' || (item->>'xid'), md5(item::text), xid_id)
          RETURNING id INTO tid;
        INSERT INTO entries (transfer_id, account_id, minutes)
             VALUES (tid, peer.clearing_account, -minutes), (tid, em.account_id, minutes);
    END IF;
    INSERT INTO xb_exchanges (id, xid, side, peer, member_account, minutes, category,
                              description, performed_on, state, reason, transfer_id,
                              answer_seq, recorded_by, decided_at, reverses, claim)
         VALUES (xid_id, item->>'xid', 'earner', from_peer, em.account_id, greatest(minutes, 1),
                 item->>'category', 'from a ' || from_peer || ' member',
                 coalesce((item->>'performed_on')::date, current_date),
                 CASE WHEN reason IS NULL THEN 'settled' ELSE 'rejected' END, reason, tid,
                 answer_seq, 'federation:' || from_peer, now(),
                 CASE WHEN reason IS NULL THEN nullif(item->>'reverses', '') END,
                 claimed.claim_id);
    IF claimed.id IS NOT NULL AND reason IS DISTINCT FROM 'claim_not_found' THEN
        UPDATE xb_claims SET state = 'approved', xid = item->>'xid',
                             decided_by = 'federation:' || from_peer, decided_at = now()
         WHERE id = claimed.id;
    END IF;
    RETURN jsonb_build_object('xid', item->>'xid', 'accepted', reason IS NULL,
                              'reason', coalesce(reason, ''));
END $$;

-- One proposal as it travels, read by the earner's bank (tb_xb_on_propose).
-- Written out as JSON text (json, kept as written) rather than built as
-- jsonb, which looks up every value's type for every row: a message of 29
-- proposals took 116 µs to build that way, 33 µs this way.
CREATE FUNCTION tb_xb_proposal(xid text, earner bigint, minutes bigint, category text,
                               performed_on date, reverses text, claim text, contact text)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT ('{"xid":' || to_json(xid)::text || ',"earner":' || coalesce(earner, 0)
            || ',"minutes":' || minutes || ',"category":' || to_json(category)::text
            || ',"performed_on":"' || performed_on::text
            || '","reverses":' || to_json(coalesce(reverses, ''))::text
            || ',"claim":' || to_json(coalesce(claim, ''))::text
            || ',"contact":' || to_json(coalesce(contact, ''))::text || '}')::json
$$;

-- Claims waiting to go, and reservations not yet proposed (naming the
-- claim or contact they come from): one message of each kind per peer, in
-- one transaction. Messages are applied by tb_fed_apply (migration 7).
CREATE OR REPLACE FUNCTION tb_xb_batch(lim int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    to_peer text;
    items jsonb;
    proposals json;
    ids bigint[];
    s bigint;
    n int := 0;
BEGIN
    FOR to_peer IN SELECT DISTINCT peer FROM xb_claims
                    WHERE side = 'earner' AND state = 'open' AND sent_seq IS NULL LOOP
        SELECT jsonb_agg(jsonb_build_object(
                   'claim_id', claim_id, 'payer', remote_member,
                   'earner', (SELECT number FROM members WHERE account_id = member_account),
                   'minutes', minutes,
                   'category', category, 'performed_on', performed_on::text,
                   'message', coalesce(message, '')) ORDER BY id),
               array_agg(id)
          INTO items, ids
          FROM (SELECT * FROM xb_claims
                 WHERE peer = to_peer AND side = 'earner' AND state = 'open'
                   AND sent_seq IS NULL
                 ORDER BY id LIMIT lim FOR UPDATE SKIP LOCKED) q;
        CONTINUE WHEN ids IS NULL;
        s := tb_fed_enqueue(to_peer, jsonb_build_object('kind', 'xb_claim', 'items', items));
        UPDATE xb_claims SET sent_seq = s WHERE id = ANY (ids);
        n := n + cardinality(ids);
    END LOOP;
    FOR to_peer IN SELECT DISTINCT peer FROM xb_exchanges
                    WHERE side = 'payer' AND state = 'pending' AND proposed_seq IS NULL LOOP
        SELECT json_agg(tb_xb_proposal(xid, remote_member, minutes, category, performed_on,
                                       reverses, claim, contact) ORDER BY id),
               array_agg(id)
          INTO proposals, ids
          FROM (SELECT * FROM xb_exchanges
                 WHERE peer = to_peer AND side = 'payer' AND state = 'pending'
                   AND proposed_seq IS NULL
                 ORDER BY id LIMIT lim FOR UPDATE SKIP LOCKED) q;
        CONTINUE WHEN ids IS NULL;
        s := tb_fed_enqueue(to_peer, json_build_object('kind', 'xb_propose', 'items', proposals));
        UPDATE xb_exchanges SET proposed_seq = s WHERE id = ANY (ids);
        n := n + cardinality(ids);
    END LOOP;
    RETURN n;
END $$;
