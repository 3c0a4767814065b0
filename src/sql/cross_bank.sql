-- What both sides of a cross-bank exchange share: its guard, its answer,
-- how the other bank's member is named, and how what a peer sent is read.

-- Once decided, a cross-bank exchange never changes, but for an erasure
-- clearing its description and the fingerprint of the request that held it,
-- and, as the run that decided it queues its answers in more than one
-- message, the sequence of the message that carries its answer
-- (tb_fed_apply, under tb.answer_parts).
CREATE FUNCTION tb_xb_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (OLD.state = 'pending'
                             OR tb_only_cleared(to_jsonb(OLD), to_jsonb(NEW), '{description,fingerprint}')
                             OR (current_setting('tb.answer_parts', true) = 'on'
                                 AND to_jsonb(OLD) - 'answer_seq' = to_jsonb(NEW) - 'answer_seq')) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'TB000', MESSAGE = 'journal_append_only',
        DETAIL = 'a decided cross-bank exchange cannot change';
END $$;

CREATE TRIGGER xb_decided BEFORE UPDATE ON xb_exchanges
    FOR EACH ROW WHEN (OLD.state <> 'pending') EXECUTE FUNCTION tb_xb_guard();

CREATE TRIGGER xb_never_deleted BEFORE DELETE ON xb_exchanges
    FOR EACH ROW EXECUTE FUNCTION tb_xb_guard();

-- The other bank's member, as our coordinator knows them: by number where
-- the other bank said it, else only by their bank. A bank's id is letters,
-- digits and dashes (the config's rule), so answers write it as it is.
CREATE FUNCTION tb_remote_label(peer text, number bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN number IS NULL THEN 'a ' || peer || ' member'
                ELSE peer || ' member ' || number END
$$;

-- A cross-bank exchange's answer, the one place its shape is written: JSON
-- text, which a batch sends to its clients as it is, and tb_xb_json reads.
-- As tb_exchange_text: to_json only for what people or the other bank
-- wrote; ids (ours, or a peer's checked as it arrived), states, sides and
-- labels need no escaping.
CREATE FUNCTION tb_xb_text(xid text, state text, reason text, peer text, side text,
                           payer bigint, earner bigint, payer_label text, earner_label text,
                           minutes bigint, category text, description text,
                           performed_on date, recorded_by text, idempotency_key text,
                           created_at timestamptz, decided_at timestamptz, transfer bigint,
                           reverses text, reversed_by text, claim text, contact text)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT '{"id":"' || xid || '","cross_bank":true,"state":"' || state || '"'
        || ',"reason":' || coalesce(to_json(reason)::text, 'null')
        || ',"peer":"' || peer || '","side":"' || side || '"'
        || ',"payer":' || coalesce(payer::text, 'null')
        || ',"earner":' || coalesce(earner::text, 'null')
        || ',"payer_label":' || coalesce('"' || payer_label || '"', 'null')
        || ',"earner_label":' || coalesce('"' || earner_label || '"', 'null')
        || ',"minutes":' || minutes
        || ',"category":' || to_json(category)::text
        || ',"description":' || coalesce(to_json(description)::text, 'null')
        || ',"performed_on":' || to_json(performed_on)::text
        || ',"recorded_by":' || to_json(recorded_by)::text
        || ',"idempotency_key":' || coalesce(to_json(idempotency_key)::text, 'null')
        || ',"created_at":' || to_json(created_at)::text
        || ',"decided_at":' || coalesce(to_json(decided_at)::text, 'null')
        || ',"transfer":' || coalesce(transfer::text, 'null')
        || ',"reverses":' || coalesce(to_json(reverses)::text, 'null')
        || ',"reversed_by":' || coalesce(to_json(reversed_by)::text, 'null')
        || ',"claim":' || coalesce(to_json(claim)::text, 'null')
        || ',"contact":' || coalesce(to_json(contact)::text, 'null') || '}'
$$;

CREATE FUNCTION tb_xb_json(x xb_exchanges) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    ours bigint := (SELECT number FROM members WHERE account_id = x.member_account);
BEGIN
    RETURN tb_xb_text(x.xid, x.state, x.reason, x.peer, x.side,
        CASE WHEN x.side = 'payer' THEN ours END,
        CASE WHEN x.side = 'earner' THEN ours END,
        CASE WHEN x.side = 'payer' THEN tb_account_label(x.member_account)
             ELSE x.peer || ' member' END,
        CASE WHEN x.side = 'earner' THEN tb_account_label(x.member_account)
             ELSE tb_remote_label(x.peer, x.remote_member) END,
        x.minutes, x.category, x.description, x.performed_on, x.recorded_by,
        x.idempotency_key, x.created_at, x.decided_at, x.transfer_id, x.reverses,
        (SELECT r.xid FROM xb_exchanges r WHERE r.reverses = x.xid), x.claim,
        x.contact)::jsonb;
END $$;

CREATE FUNCTION tb_xb_get(want text) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    x xb_exchanges;
BEGIN
    SELECT * INTO x FROM xb_exchanges WHERE xid = want;
    IF NOT FOUND THEN
        PERFORM tb_raise('exchange_not_found', format('there is no exchange %s', want));
    END IF;
    RETURN tb_xb_json(x);
END $$;

-- Histories and statements name the other bank's member of a cross-bank
-- line as "westminster member 204" (the number our coordinator was told)
-- or "a colchester member" (the payer's bank never says who).
CREATE FUNCTION tb_xb_party(xb bigint) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT tb_remote_label(peer, CASE WHEN side = 'payer' THEN remote_member END)
      FROM xb_exchanges WHERE id = xb
$$;

-- What a peer sent is read by these, which never raise: a bad value is no
-- value. Each is written in the cheap form (a bounded regular expression
-- costs its bound again in states), and in SQL, so that it is written into
-- the queries that call it rather than called.

-- A number of at most digits digits, or NULL.
CREATE FUNCTION tb_peer_number(t text, digits int) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN length(t) <= digits AND t ~ '^[0-9]+$' THEN t::bigint END
$$;

-- A day of the calendar, or NULL. Only a well-formed date reaches
-- make_date, each test in an arm of its own; no exception block, which
-- would make every call a subtransaction.
CREATE FUNCTION tb_safe_date(t text) RETURNS date LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN t ~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$'
                     AND left(t, 4) <> '0000'
           THEN CASE WHEN substr(t, 9, 2)::int
                          <= CASE WHEN substr(t, 6, 2) IN ('04', '06', '09', '11') THEN 30
                                  WHEN substr(t, 6, 2) <> '02' THEN 31
                                  WHEN left(t, 4)::int % 4 = 0
                                       AND (left(t, 4)::int % 100 <> 0
                                            OR left(t, 4)::int % 400 = 0) THEN 29
                                  ELSE 28 END
                     THEN make_date(left(t, 4)::int, substr(t, 6, 2)::int, substr(t, 9, 2)::int)
                END
           END
$$;

-- Whether id is the peer's own to name: its bank id, a colon, the tag of
-- the kind ('' for exchanges, 'c' for claims, 'k' for contacts) and 1 to
-- 18 digits.
CREATE FUNCTION tb_peer_id(from_peer text, id text, tag text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(left(id, length(from_peer) + length(tag) + 1) = from_peer || ':' || tag
                    AND length(id) - length(from_peer) - length(tag) BETWEEN 2 AND 19
                    AND substr(id, length(from_peer) + length(tag) + 2) !~ '[^0-9]', false)
$$;

-- The rules for what a peer's exchange or claim says, each answering its
-- reason or NULL.

-- Text a person could have typed: no control character but a line break
-- or a tab (C0, DEL and C1 are refused, as the API refuses them).
CREATE FUNCTION tb_plain(t text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(t !~ E'[\\x01-\\x08\\x0b-\\x1f\\x7f-\\x9f]', true)
$$;

-- A date and category as a coordinator could have written them: a day of
-- the calendar within the last two years and no later than tomorrow (the
-- peer's today may be ahead of ours), a category of 1 to 40 characters
-- with no control characters.
CREATE FUNCTION tb_rule_sent(performed_on text, category text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN coalesce(tb_safe_date(performed_on) BETWEEN current_date - 730
                                                              AND current_date + 1
                              AND length(category) BETWEEN 1 AND 40
                              AND tb_plain(category) AND category !~ E'[\\n\\t]', false)
                THEN NULL ELSE 'invalid_request' END
$$;

-- Exchanges are between banks, not with the national body, and each is
-- cleared through the bank's clearing account here.
CREATE FUNCTION tb_rule_bank(kind text, clearing bigint, exchanges boolean) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN kind IS DISTINCT FROM 'bank' OR clearing IS NULL THEN 'unknown_bank'
                WHEN NOT exchanges THEN 'not_exchanging' END
$$;

-- Why no new exchange, claim or contact goes to a linked bank.
CREATE FUNCTION tb_not_exchanging_text(bank text) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT format('this bank exchanges no hours with %s: %s', bank,
                  CASE WHEN (SELECT removed_at FROM fed_peers WHERE peer = bank) IS NOT NULL
                       THEN 'it is no longer in the network''s register'
                       ELSE 'it is not in [federation] exchange_with' END)
$$;

-- A member a peer may name: one we have, and have not erased.
CREATE FUNCTION tb_rule_named(number bigint, erased_at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN number IS NULL OR erased_at IS NOT NULL THEN 'member_not_found' END
$$;

-- The most one exchange or claim from a peer may be: what the daemon
-- gave tb_fed_apply for this run from its config, else the config's
-- default (24 hours). A setting, never a read of a table: the earner's
-- busy path slowed several times over under load when it read one here.
CREATE FUNCTION tb_max_exchange() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('tb.max_exchange', true), '')::bigint, 1440)
$$;

-- What a peer asks us to record is held to our own max_exchange
-- (tb_max_exchange), as our members' exchanges are; callers read it once.
CREATE FUNCTION tb_rule_hours(minutes bigint, max_exchange bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN coalesce(minutes <= 0 OR minutes > max_exchange, true)
                THEN 'invalid_hours' END
$$;

-- At the earner's bank: the peer's clearing account may owe us no more
-- than its limit.
CREATE FUNCTION tb_rule_exposure(balance bigint, minutes bigint, floor bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN tb_rule_floor(balance, minutes, floor) IS NOT NULL THEN 'exposure_limit' END
$$;

-- An answer to a proposal, the one place its shape is written: JSON text.
-- An xid checked as the peer's (tb_peer_id) needs no escaping; one that
-- failed the check is cut short and escaped.
CREATE FUNCTION tb_xb_answer_text(xid text, reason text, item jsonb) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN reason IS NULL
                THEN '{"xid":"' || xid || '","accepted":true,"reason":"'
                ELSE '{"xid":' || to_json(left(coalesce(xid, ''), 80))::text
                     || ',"accepted":false,"reason":"' || reason END
           || '","proposal":"' || tb_xb_proposal_digest(item) || '"}'
$$;

-- What an answer answered (ExchangeAnswer.proposal): a proposal's fields,
-- hashed, so that a bank restored from a backup knows the proposal its
-- answer was to when the peer sends it again (tb_xb_recovered).
CREATE FUNCTION tb_xb_proposal_digest(item jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT left(encode(sha256(convert_to(concat_ws('|', item->>'xid', item->>'earner',
                                                   item->>'minutes', item->>'category',
                                                   item->>'performed_on',
                                                   coalesce(item->>'reverses', ''),
                                                   coalesce(item->>'claim', ''),
                                                   coalesce(item->>'contact', '')),
                                         'UTF8')), 'hex'), 32)
$$;
