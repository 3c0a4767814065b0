-- What both sides of a cross-bank exchange share: its guard, its answer,
-- and how the other bank's member is named.

-- Once decided, a cross-bank exchange never changes.
CREATE FUNCTION tb_xb_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.state = 'pending' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'TB000', MESSAGE = 'journal_append_only',
        DETAIL = 'a decided cross-bank exchange cannot change';
END $$;

CREATE TRIGGER xb_decided BEFORE UPDATE ON xb_exchanges
    FOR EACH ROW WHEN (OLD.state <> 'pending') EXECUTE FUNCTION tb_xb_guard();

CREATE TRIGGER xb_never_deleted BEFORE DELETE ON xb_exchanges
    FOR EACH ROW EXECUTE FUNCTION tb_xb_guard();

CREATE FUNCTION tb_xb_json(x xb_exchanges) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN jsonb_build_object(
            'id', x.xid, 'cross_bank', true, 'state', x.state, 'reason', x.reason,
            'peer', x.peer, 'side', x.side,
            'payer', CASE WHEN x.side = 'payer'
                          THEN (SELECT number FROM members WHERE account_id = x.member_account) END,
            'earner', CASE WHEN x.side = 'earner'
                           THEN (SELECT number FROM members WHERE account_id = x.member_account) END,
            'payer_label', CASE WHEN x.side = 'payer' THEN tb_account_label(x.member_account)
                                ELSE x.peer || ' member' END,
            'earner_label', CASE WHEN x.side = 'earner' THEN tb_account_label(x.member_account)
                                 WHEN x.remote_member IS NULL THEN 'a ' || x.peer || ' member'
                                 ELSE x.peer || ' member ' || x.remote_member END,
            'minutes', x.minutes, 'category', x.category, 'description', x.description,
            'performed_on', x.performed_on, 'recorded_by', x.recorded_by,
            'idempotency_key', x.idempotency_key, 'created_at', x.created_at,
            'decided_at', x.decided_at, 'transfer', x.transfer_id, 'reverses', x.reverses,
            'reversed_by', (SELECT r.xid FROM xb_exchanges r WHERE r.reverses = x.xid),
            'claim', x.claim, 'contact', x.contact);
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
    SELECT CASE WHEN side = 'payer' AND remote_member IS NOT NULL
                THEN peer || ' member ' || remote_member
                ELSE 'a ' || peer || ' member' END
      FROM xb_exchanges WHERE id = xb
$$;
