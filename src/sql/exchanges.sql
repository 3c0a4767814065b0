-- A bank's own exchanges: recorded one at a time or in batches, group
-- exchanges, grants from the community account, reversals, and how each is
-- answered.

-- An exchange's answer, the one place its shape is written: JSON text,
-- which a batch sends to its clients as it is, and tb_exchange_json reads.
-- Written out rather than built with json_build_object, which looks up
-- every value's type again for every row; so is to_json, used only for what
-- people typed. Kinds and labels need no escaping (tb_member_label,
-- tb_account_label).
CREATE FUNCTION tb_exchange_text(id bigint, kind text, payer bigint, earner bigint,
                                 payer_label text, earner_label text, minutes bigint,
                                 category text, description text, performed_on date,
                                 recorded_by text, idempotency_key text,
                                 created_at timestamptz, reverses bigint, reason text,
                                 group_key text, reversed_by bigint)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT '{"id":' || id || ',"kind":"' || kind || '","state":"settled"'
        || ',"payer":' || coalesce(payer::text, 'null')
        || ',"earner":' || coalesce(earner::text, 'null')
        || ',"payer_label":' || coalesce('"' || payer_label || '"', 'null')
        || ',"earner_label":' || coalesce('"' || earner_label || '"', 'null')
        || ',"minutes":' || minutes
        || ',"category":' || to_json(category)::text
        || ',"description":' || coalesce(to_json(description)::text, 'null')
        || ',"performed_on":' || to_json(performed_on)::text
        || ',"recorded_by":' || to_json(recorded_by)::text
        || ',"idempotency_key":' || to_json(idempotency_key)::text
        || ',"created_at":' || to_json(created_at)::text
        || ',"reverses":' || coalesce(reverses::text, 'null')
        || ',"reason":' || coalesce(to_json(reason)::text, 'null')
        || ',"group_key":' || coalesce(to_json(group_key)::text, 'null')
        || ',"reversed_by":' || coalesce(reversed_by::text, 'null') || '}'
$$;

CREATE FUNCTION tb_exchange_json(tid bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    t transfers;
BEGIN
    SELECT * INTO t FROM transfers WHERE id = tid;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN tb_exchange_text(t.id, t.kind,
        (SELECT number FROM members WHERE account_id = t.payer_account),
        (SELECT number FROM members WHERE account_id = t.earner_account),
        tb_account_label(t.payer_account), tb_account_label(t.earner_account),
        t.minutes, t.category, t.description, t.performed_on, t.recorded_by,
        t.idempotency_key, t.created_at, t.reverses, t.reason, t.group_key,
        (SELECT r.id FROM transfers r WHERE r.reverses = t.id))::jsonb;
END $$;

CREATE FUNCTION tb_exchange_get(tid bigint) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    j jsonb := tb_exchange_json(tid);
BEGIN
    IF j IS NULL THEN
        PERFORM tb_raise('exchange_not_found', format('there is no exchange %s', tid));
    END IF;
    RETURN j;
END $$;

CREATE FUNCTION tb_exchange_list(num bigint, cursor bigint, lim int)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    acct bigint;
    ids bigint[];
BEGIN
    IF num IS NOT NULL THEN
        acct := (tb_find_member(num)).account_id;
    END IF;
    SELECT array_agg(id ORDER BY id DESC) INTO ids FROM (
        SELECT id FROM transfers
         WHERE (acct IS NULL OR payer_account = acct OR earner_account = acct)
           AND (cursor IS NULL OR id < cursor)
         ORDER BY id DESC LIMIT lim + 1) page;
    ids := coalesce(ids, '{}');
    RETURN jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(tb_exchange_json(i) ORDER BY i DESC)
                             FROM unnest(ids[1:lim]) i), '[]'),
        'next_cursor', CASE WHEN cardinality(ids) > lim THEN ids[lim]::text END);
END $$;

CREATE FUNCTION tb_history(num bigint, cursor bigint, lim int)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    m members := tb_find_member(num);
    rows jsonb;
BEGIN
    SELECT jsonb_agg(to_jsonb(x) ORDER BY x.entry DESC) INTO rows FROM (
        SELECT * FROM (
            SELECT e.id AS entry, t.id AS exchange, t.performed_on, t.category, t.description,
                   e.minutes, sum(e.minutes) OVER (ORDER BY e.id) AS balance_after,
                   coalesce(tb_xb_party(t.xb_id), tb_move_party(t.referral_id),
                            tb_account_label(other.account_id))
                       AS other_party,
                   (SELECT name FROM members WHERE account_id = other.account_id) AS other_name
              FROM entries e JOIN transfers t ON t.id = e.transfer_id
              CROSS JOIN LATERAL (SELECT o.account_id FROM entries o
                                   WHERE o.transfer_id = t.id AND o.account_id <> e.account_id
                                   LIMIT 1) other
             WHERE e.account_id = m.account_id) lines
         WHERE cursor IS NULL OR entry < cursor
         ORDER BY entry DESC LIMIT lim + 1) x;
    rows := coalesce(rows, '[]');
    RETURN jsonb_build_object(
        'number', m.number, 'name', m.name,
        'items', coalesce((SELECT jsonb_agg(r ORDER BY ord)
                             FROM jsonb_array_elements(rows) WITH ORDINALITY AS a(r, ord)
                            WHERE ord <= lim), '[]'),
        'next_cursor', CASE WHEN jsonb_array_length(rows) > lim
                            THEN rows->(lim - 1)->>'entry' END);
END $$;

CREATE FUNCTION tb_exchange_record(p jsonb, actor text, default_floor bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    key text := coalesce(p->>'idempotency_key', gen_random_uuid()::text);
    fp text := md5((p - 'idempotency_key')::text);
    answer jsonb := tb_replay(key, fp);
    pm members;
    em members;
    tid bigint;
    overridden boolean;
BEGIN
    IF answer IS NOT NULL THEN
        RETURN answer;
    END IF;
    pm := tb_find_member((p->>'payer')::bigint);
    em := tb_find_member((p->>'earner')::bigint);
    IF tb_rule_parties(pm.number, em.number) IS NOT NULL THEN
        PERFORM tb_raise('same_member', 'payer and earner are the same member');
    END IF;
    IF tb_rule_date((p->>'performed_on')::date) IS NOT NULL THEN
        PERFORM tb_raise('invalid_date', 'performed_on is in the future');
    END IF;
    PERFORM tb_lock_accounts(ARRAY[pm.account_id, em.account_id]);
    pm := tb_active_member(pm.number, 'payer');
    em := tb_active_member(em.number, 'earner');
    overridden := tb_safeguarding_guard(p->>'category', em, (p->>'performed_on')::date,
                                        p->>'safeguarding_override');
    tid := tb_post('exchange', pm.account_id, em.account_id,
        (p->>'minutes')::bigint, p->>'category', p->>'description',
        (p->>'performed_on')::date, actor, key, fp, NULL, NULL, NULL, default_floor, NULL);
    IF overridden THEN
        PERFORM tb_safeguarding_overridden(em.account_id, p->>'category', tid, NULL,
                                           p->>'safeguarding_override', actor);
    END IF;
    -- A new statement, so the STABLE reader sees the row just posted.
    RETURN tb_exchange_json(tid);
END $$;

CREATE FUNCTION tb_exchange_batch_local(items jsonb, default_floor bigint) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    ok boolean;
    -- Per item, in order: found once while checking, used by what follows.
    payers bigint[];
    earners bigint[];
    payer_accounts bigint[];
    earner_accounts bigint[];
    payer_labels text[];
    earner_labels text[];
    result text[];
    required text[] := tb_check_required();
BEGIN
    -- An override goes item by item, to be recorded with its exchange.
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(items) i
                WHERE (i->>'xb')::boolean OR i->'p'->>'idempotency_key' IS NULL
                   OR i->'p' ? 'safeguarding_override') THEN
        RETURN NULL;
    END IF;
    -- tb_exchange_batch, the caller, holds every key's lock already.
    WITH it AS (
        SELECT n, (x->'p'->>'payer')::bigint AS payer, (x->'p'->>'earner')::bigint AS earner,
               (x->'p'->>'minutes')::bigint AS minutes, x->'p'->>'idempotency_key' AS key,
               (x->'p'->>'performed_on')::date AS performed_on, x->'p'->>'category' AS category
          FROM jsonb_array_elements(items) WITH ORDINALITY AS t(x, n)),
    m AS (
        SELECT it.*, pm.account_id AS pa, pm.status AS ps, em.account_id AS ea,
               em.status AS es,
               tb_member_label(pm.kind, pm.number, pm.erased_at) AS pl,
               tb_member_label(em.kind, em.number, em.erased_at) AS el
          FROM it LEFT JOIN members pm ON pm.number = it.payer
                  LEFT JOIN members em ON em.number = it.earner),
    need AS (SELECT pa, sum(minutes)::bigint AS total FROM m GROUP BY pa)
    -- The rules of tb_exchange_record for every item, and each payer's
    -- floor for all it spends in the batch. A member not found is NULL
    -- here: bool_and skips NULLs, so each is made false first.
    SELECT coalesce(bool_and(coalesce(ps IS NOT NULL AND es IS NOT NULL
                                      AND tb_rule_parties(payer, earner) IS NULL
                                      AND tb_rule_date(performed_on) IS NULL
                                      AND tb_rule_active(ps) IS NULL
                                      AND tb_rule_active(es) IS NULL
                                      AND (cardinality(required) = 0
                                           OR tb_rule_safeguarding(category, ea, performed_on,
                                                                   required) IS NULL),
                                      false)), false)
           AND count(DISTINCT key) = count(*)
           AND NOT EXISTS (SELECT 1 FROM transfers t
                            WHERE t.idempotency_key = ANY (ARRAY(SELECT key FROM it)))
           AND NOT EXISTS (SELECT 1 FROM need JOIN accounts a ON a.id = need.pa
                            WHERE tb_rule_floor(a.balance_minutes - a.pending_minutes,
                                                need.total,
                                                coalesce(a.floor_minutes, default_floor))
                                  IS NOT NULL),
           array_agg(payer ORDER BY n), array_agg(earner ORDER BY n),
           array_agg(pa ORDER BY n), array_agg(ea ORDER BY n),
           array_agg(pl ORDER BY n), array_agg(el ORDER BY n)
      INTO ok, payers, earners, payer_accounts, earner_accounts, payer_labels, earner_labels
      FROM m;
    IF NOT ok THEN
        RETURN NULL;
    END IF;
    -- Which path a batch took, for the tests that prove each runs.
    PERFORM set_config('tb.batch_path', 'set-wise', true);
    WITH it AS (
        SELECT n, x->>'actor' AS actor, (x->'p'->>'minutes')::bigint AS minutes,
               x->'p'->>'category' AS category, x->'p'->>'description' AS description,
               (x->'p'->>'performed_on')::date AS performed_on,
               x->'p'->>'idempotency_key' AS key, md5(((x->'p') - 'idempotency_key')::text) AS fp
          FROM jsonb_array_elements(items) WITH ORDINALITY AS t(x, n)),
    ins AS (
        INSERT INTO transfers (kind, payer_account, earner_account, minutes, category,
                               description, performed_on, recorded_by, idempotency_key,
                               fingerprint)
        SELECT 'exchange', payer_accounts[it.n], earner_accounts[it.n], it.minutes, it.category,
               it.description, coalesce(it.performed_on, current_date), it.actor, it.key, it.fp
          FROM it ORDER BY it.n
        RETURNING *),
    -- The transfers' ids rise in the items' order, in which they were written.
    done AS (SELECT ins.*, row_number() OVER (ORDER BY ins.id) AS n FROM ins)
    SELECT array_agg(tb_exchange_text(d.id, d.kind, payers[d.n], earners[d.n],
                                      payer_labels[d.n], earner_labels[d.n], d.minutes,
                                      d.category, d.description, d.performed_on,
                                      d.recorded_by, d.idempotency_key, d.created_at,
                                      NULL, NULL, NULL, NULL)
                     ORDER BY d.n)
      INTO result
      FROM done d;
    RETURN result;
END $$;

-- Exchanges to record, each {"xb": bool, "actor": text, "p": the validated
-- request}: a row for each, in order, either ok and the answer's JSON text
-- (sent to the client as it is) or refused with a code and a detail. A
-- refusal undoes that exchange only.
--
-- The batch commits without waiting for the disk, so that the accounts it
-- locks are free for the next batch while the WAL is written: its caller
-- must tell nobody of it until a transaction that writes WAL has committed
-- synchronously after it (the daemon's barrier, db_query_durable): only
-- such a commit flushes the WAL, up to itself and so past this one.
-- Whatever reads the batch's effects and commits after it is ordered after
-- it in the WAL, so a crash loses both or neither. Plans: see tb_fed_apply.
CREATE FUNCTION tb_exchange_batch(items jsonb, default_floor bigint, own_bank text)
RETURNS TABLE (ok boolean, body text, code text, detail text) LANGUAGE plpgsql
    SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET random_page_cost = 1.1 SET plan_cache_mode = force_generic_plan SET jit = off AS $$
DECLARE
    it jsonb;
    fast text[];
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    -- Every key the batch names first, in one order, as a single request
    -- takes its key before its accounts (tb_replay): a retry waits for its
    -- first try, and two batches wait on each other at worst, never in a
    -- cycle.
    PERFORM pg_advisory_xact_lock(h)
       FROM (SELECT DISTINCT hashtext(i->'p'->>'idempotency_key') AS h
               FROM jsonb_array_elements(items) i
              WHERE i->'p'->>'idempotency_key' IS NOT NULL ORDER BY 1) keys;
    -- A batch of cross-bank exchanges locks its payers' accounts itself,
    -- once it has done what needs no lock. Anything else takes the
    -- accounts, in order, before anything else locks one: each set of keys
    -- looked up in one scan of its index (= ANY), which returns the
    -- accounts in order.
    fast := tb_xb_batch_record(items, default_floor, own_bank);
    IF fast IS NULL THEN
        PERFORM 1 FROM accounts
         WHERE id = ANY (ARRAY(
                   SELECT m.account_id FROM members m
                    WHERE m.number = ANY (ARRAY(
                          SELECT (i->'p'->>'payer')::bigint FROM jsonb_array_elements(items) i
                          UNION ALL
                          SELECT (i->'p'->>'earner')::bigint FROM jsonb_array_elements(items) i
                           WHERE NOT (i->>'xb')::boolean))))
         ORDER BY id FOR UPDATE;
        fast := tb_exchange_batch_local(items, default_floor);
    END IF;
    IF fast IS NOT NULL THEN
        RETURN QUERY SELECT true, f.b, NULL::text, NULL::text
                       FROM unnest(fast) WITH ORDINALITY AS f(b, n) ORDER BY f.n;
        RETURN;
    END IF;
    FOR it IN SELECT * FROM jsonb_array_elements(items) LOOP
        BEGIN
            ok := true;
            body := CASE WHEN (it->>'xb')::boolean
                         THEN tb_xb_record(it->'p', it->>'actor', default_floor, own_bank)
                         ELSE tb_exchange_record(it->'p', it->>'actor', default_floor) END;
            code := NULL;
            detail := NULL;
        EXCEPTION WHEN SQLSTATE 'TB000' THEN
            ok := false;
            body := NULL;
            GET STACKED DIAGNOSTICS code = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
        END;
        RETURN NEXT;
    END LOOP;
END $$;

CREATE FUNCTION tb_group_json(gkey text) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'group_key', gkey, 'state', 'settled',
        'payer', (array_agg(pm.number))[1],
        'minutes', sum(t.minutes),
        'items', jsonb_agg(tb_exchange_json(t.id) ORDER BY t.id))
      FROM transfers t LEFT JOIN members pm ON pm.account_id = t.payer_account
     WHERE t.group_key = gkey
$$;

-- One activity, several earners (a gardening session with four helpers):
-- one exchange per earner, all posted or none.
CREATE FUNCTION tb_exchange_group(p jsonb, actor text, default_floor bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    key text := coalesce(p->>'idempotency_key', gen_random_uuid()::text);
    fp text := md5((p - 'idempotency_key')::text);
    answer jsonb := tb_replay(key, fp);
    pm members;
    em members;
    item jsonb;
    accts bigint[];
    total bigint := 0;
    i int := 0;
    tid bigint;
BEGIN
    IF answer IS NOT NULL THEN
        RETURN answer;
    END IF;
    IF tb_rule_date((p->>'performed_on')::date) IS NOT NULL THEN
        PERFORM tb_raise('invalid_date', 'performed_on is in the future');
    END IF;
    pm := tb_find_member((p->>'payer')::bigint);
    accts := ARRAY[pm.account_id];
    FOR item IN SELECT * FROM jsonb_array_elements(p->'earners') LOOP
        IF tb_rule_parties(pm.number, (item->>'earner')::bigint) IS NOT NULL THEN
            PERFORM tb_raise('same_member', format('the payer %s is also an earner', pm.number));
        END IF;
        accts := accts || (tb_find_member((item->>'earner')::bigint)).account_id;
        total := total + (item->>'minutes')::bigint;
    END LOOP;
    PERFORM tb_lock_accounts(accts);
    pm := tb_active_member(pm.number, 'payer');
    FOR item IN SELECT * FROM jsonb_array_elements(p->'earners') LOOP
        i := i + 1;
        em := tb_active_member((item->>'earner')::bigint, 'earner');
        IF tb_safeguarding_guard(p->>'category', em, (p->>'performed_on')::date,
                                 p->>'safeguarding_override') THEN
            tid := tb_post('exchange', pm.account_id, em.account_id,
                (item->>'minutes')::bigint, p->>'category', p->>'description',
                (p->>'performed_on')::date, actor, key || ':' || i, fp, NULL, NULL, key,
                default_floor, NULL);
            PERFORM tb_safeguarding_overridden(em.account_id, p->>'category', tid, NULL,
                                               p->>'safeguarding_override', actor);
        ELSE
            PERFORM tb_post('exchange', pm.account_id, em.account_id,
                (item->>'minutes')::bigint, p->>'category', p->>'description',
                (p->>'performed_on')::date, actor, key || ':' || i, fp, NULL, NULL, key,
                default_floor, NULL);
        END IF;
    END LOOP;
    RETURN tb_group_json(key);
END $$;

-- Hours from the community account to a member: starting hours, rewards.
CREATE FUNCTION tb_grant(p jsonb, actor text, community_floor bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    key text := coalesce(p->>'idempotency_key', gen_random_uuid()::text);
    fp text := md5((p - 'idempotency_key')::text);
    answer jsonb := tb_replay(key, fp);
    em members;
    community bigint := tb_community_account();
    tid bigint;
BEGIN
    IF answer IS NOT NULL THEN
        RETURN answer;
    END IF;
    em := tb_find_member((p->>'member')::bigint);
    PERFORM tb_lock_accounts(ARRAY[community, em.account_id]);
    em := tb_active_member(em.number, 'member');
    tid := tb_post('grant', community, em.account_id,
        (p->>'minutes')::bigint, coalesce(p->>'category', 'grant'), p->>'description',
        (p->>'performed_on')::date, actor, key, fp, NULL, p->>'reason', NULL, NULL,
        community_floor);
    -- A new statement, so the STABLE reader sees the row just posted.
    RETURN tb_exchange_json(tid);
END $$;

-- A new transfer the other way, referencing the original, which never
-- changes. Reversals are corrections, so the members' status does not
-- matter, but floors still do.
CREATE FUNCTION tb_reverse(original bigint, p jsonb, actor text, default_floor bigint,
                           community_floor bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    key text := coalesce(p->>'idempotency_key', gen_random_uuid()::text);
    fp text := md5((p || jsonb_build_object('reverses', original) - 'idempotency_key')::text);
    answer jsonb := tb_replay(key, fp);
    t transfers;
    tid bigint;
BEGIN
    IF answer IS NOT NULL THEN
        RETURN answer;
    END IF;
    SELECT * INTO t FROM transfers WHERE id = original;
    IF NOT FOUND THEN
        PERFORM tb_raise('exchange_not_found', format('there is no exchange %s', original));
    END IF;
    IF t.kind = 'reversal' THEN
        PERFORM tb_raise('not_reversible', format(
            'transfer %s is itself a reversal; record a new exchange instead', original));
    END IF;
    IF t.kind = 'move' OR t.xb_id IS NOT NULL THEN
        PERFORM tb_raise('not_reversible', format(
            'transfer %s is %s; it is not reversed here', original,
            CASE WHEN t.kind = 'move' THEN 'a member''s move between banks, which both banks posted'
                 ELSE 'a cross-bank exchange: reverse it by its id, at the bank where the hours were earned' END));
    END IF;
    PERFORM tb_lock_accounts(ARRAY[t.payer_account, t.earner_account]);
    PERFORM tb_check_not_moving(ARRAY[t.payer_account, t.earner_account]);
    IF EXISTS (SELECT 1 FROM transfers WHERE reverses = original) THEN
        PERFORM tb_raise('already_reversed', format('exchange %s was already reversed by %s',
            original, (SELECT id FROM transfers WHERE reverses = original)));
    END IF;
    tid := tb_post('reversal', t.earner_account, t.payer_account, t.minutes, t.category,
        format('reversal of %s %s', t.kind, t.id), current_date, actor, key, fp, original,
        p->>'reason', NULL, default_floor, community_floor);
    -- A new statement, so the STABLE reader sees the row just posted.
    RETURN tb_exchange_json(tid);
END $$;
