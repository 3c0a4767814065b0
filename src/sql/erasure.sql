-- Erasure that reaches every copy. An erased member's personal fields and
-- the free text of their transfers are cleared where they are kept
-- (tb_member_erase); so is the free text of everything they shared with a
-- peer bank: the claims, contacts and cross-bank exchanges that were
-- theirs, here and at the peer, and the signed envelopes that carried
-- those words, which are redacted to their hash. The chain and the
-- checkpoints rest on hashes, so the channel's proof of order and of
-- exactly-once holds; a member's right to erasure outranks the proof of
-- what a free-text field said. Peers hear of it in an erasure message
-- naming the records, never the member.

-- A channel message's body with the words of the records named taken out:
-- the message of each claim, claim answer, contact request and contact
-- answer among them; NULL when the body carries none of them.
CREATE FUNCTION tb_redact_body(body jsonb, claims text[], contacts text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN bool_or(hit) THEN
               jsonb_set(body, '{items}', jsonb_agg(CASE WHEN hit THEN x || '{"message": ""}'
                                                    ELSE x END ORDER BY n))
           END
      FROM (SELECT x, n,
                   CASE WHEN body->>'kind' IN ('xb_claim', 'xb_claim_answer')
                        THEN x->>'claim_id' = ANY (claims)
                        WHEN body->>'kind' IN ('dir_contact', 'dir_contact_answer')
                        THEN x->>'contact_id' = ANY (contacts)
                        ELSE false
                   END AND coalesce(x->>'message', '') <> '' AS hit
              FROM jsonb_array_elements(CASE WHEN jsonb_typeof(body->'items') = 'array'
                                             THEN body->'items' ELSE '[]' END)
                   WITH ORDINALITY AS t(x, n)) i
$$;

-- Whether one body is another with only some items' words taken out (a
-- referral's items: all but their id, tb_referral_redacted): the one
-- change to a kept message the inbox allows (tb_inbox_guard).
CREATE FUNCTION tb_redacted(old jsonb, new jsonb) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT old - 'items' = new - 'items'
       AND jsonb_array_length(old->'items') = jsonb_array_length(new->'items')
       AND NOT EXISTS (SELECT 1
                         FROM jsonb_array_elements(old->'items') WITH ORDINALITY AS o(x, n)
                         JOIN jsonb_array_elements(new->'items') WITH ORDINALITY AS w(x, n)
                              USING (n)
                        WHERE w.x <> o.x AND w.x <> o.x || '{"message": ""}'
                          AND NOT (old->>'kind' = 'referral'
                                   AND w.x = jsonb_build_object('referral_id', o.x->'referral_id')))
$$;

-- What a peer sent us is kept as it came: the purge may delete old
-- messages (tb_fed_inbox_purge), and erasure may redact one to its hash.
CREATE FUNCTION tb_inbox_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.envelope = '' AND NEW.peer = OLD.peer AND NEW.seq = OLD.seq
       AND NEW.hash = OLD.hash AND NEW.applied_at = OLD.applied_at
       AND NEW.body <> OLD.body AND tb_redacted(OLD.body, NEW.body) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'TB000', MESSAGE = 'journal_append_only',
        DETAIL = format('%s on fed_inbox is refused: what a peer sent is kept as proof, '
                        'redacted only by an erasure', TG_OP);
END $$;

CREATE TRIGGER fed_inbox_append_only BEFORE UPDATE OR DELETE ON fed_inbox
    FOR EACH ROW WHEN (current_setting('tb.inbox_purge', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION tb_inbox_guard();

-- The messages to or from a peer that carried words about the claims and
-- contacts named: box 'o' for ours (sent_seq), 'i' for the peer's
-- (received_seq), each with the records whose words it holds. No other
-- message holds their words: what a peer sends that no record keeps, it
-- keeps without them (tb_inbox_kept).
CREATE FUNCTION tb_carried(p text, claims text[], contacts text[])
RETURNS TABLE (box text, seq bigint, claim_ids text[], contact_ids text[])
LANGUAGE sql STABLE AS $$
    SELECT box, s, coalesce(array_agg(id) FILTER (WHERE rec = 'claim'), '{}'),
           coalesce(array_agg(id) FILTER (WHERE rec = 'contact'), '{}')
      FROM (SELECT 'o' AS box, sent_seq AS s, 'claim' AS rec, claim_id AS id FROM xb_claims
             WHERE claim_id = ANY (claims) AND peer = p
            UNION ALL
            SELECT 'i', received_seq, 'claim', claim_id FROM xb_claims
             WHERE claim_id = ANY (claims) AND peer = p
            UNION ALL
            SELECT 'o', sent_seq, 'contact', contact_id FROM dir_contacts
             WHERE contact_id = ANY (contacts) AND peer = p
            UNION ALL
            SELECT 'i', received_seq, 'contact', contact_id FROM dir_contacts
             WHERE contact_id = ANY (contacts) AND peer = p) r
     WHERE s IS NOT NULL
     GROUP BY box, s
$$;

-- A claim or contact a peer sent that was refused on arrival, and named a
-- member of ours (account): noted without its words (fed_refused_records),
-- so that the member's erasure tells the peer, whose own copy holds them.
-- At most 100 for one member from one peer: an erasure's work is bounded.
CREATE FUNCTION tb_note_refused(p text, rec text, id text, account bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO fed_refused_records (peer, record, id, member_account)
    SELECT p, rec, id, account
     WHERE account IS NOT NULL AND length(id) BETWEEN 1 AND 80
       AND (SELECT count(*) FROM fed_refused_records f
             WHERE f.member_account = account AND f.peer = p) < 100
    ON CONFLICT DO NOTHING
$$;

-- Clears what this bank holds of records it shares with a peer: the free
-- text of the claims, contacts and exchanges named (and of the exchanges'
-- postings), the fingerprints of the requests that held it (a hash of
-- known fields and guessable words), and the messages that carried it,
-- each way: those the records name (sent_seq, received_seq), and no others
-- are read. A message to the peer not yet acknowledged may be needed
-- again, so it waits (fed_redact_waiting) until it is.
--
-- Our own words go too when a peer's erasure names the record: a broker's
-- description of an exchange with the peer's member is as likely as
-- anything to name them, and nothing else here knows their name to take
-- out. A peer can so clear the free text of records it is party to, and
-- nothing more: never hours, parties or dates, nor a record it does not
-- share with us.
CREATE FUNCTION tb_redact_records(p text, claims text[], contacts text[], xids text[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    acked bigint := coalesce((SELECT out_acked FROM fed_acked WHERE peer = p), 0);
BEGIN
    UPDATE xb_claims SET description = NULL, message = NULL, answer = NULL, fingerprint = NULL
     WHERE peer = p AND claim_id = ANY (claims)
       AND (description IS NOT NULL OR message IS NOT NULL OR answer IS NOT NULL
            OR fingerprint IS NOT NULL);
    UPDATE dir_contacts SET message = NULL, answer = NULL, item_text = NULL
     WHERE peer = p AND contact_id = ANY (contacts)
       AND (message IS NOT NULL OR answer IS NOT NULL OR item_text IS NOT NULL);
    WITH x AS (
        UPDATE xb_exchanges SET description = NULL, fingerprint = NULL
         WHERE peer = p AND xid = ANY (xids)
           AND (description IS NOT NULL OR fingerprint IS NOT NULL)
        RETURNING transfer_id)
    UPDATE transfers SET description = NULL, fingerprint = NULL  -- the exchange's posting here
      FROM x
     WHERE transfers.id = x.transfer_id
       AND (transfers.description IS NOT NULL OR transfers.fingerprint IS NOT NULL);
    UPDATE fed_inbox i SET body = tb_redact_body(i.body, c.claim_ids, c.contact_ids), envelope = ''
      FROM tb_carried(p, claims, contacts) c
     WHERE c.box = 'i' AND i.peer = p AND i.seq = c.seq
       AND tb_redact_body(i.body, c.claim_ids, c.contact_ids) IS NOT NULL;
    UPDATE fed_outbox o
       SET body = tb_redact_body(o.body::jsonb, c.claim_ids, c.contact_ids)::json, envelope = ''
      FROM tb_carried(p, claims, contacts) c
     WHERE c.box = 'o' AND c.seq <= acked AND o.peer = p AND o.seq = c.seq
       AND tb_redact_body(o.body::jsonb, c.claim_ids, c.contact_ids) IS NOT NULL;
    INSERT INTO fed_redact_waiting (peer, seq, claims, contacts)
    SELECT p, c.seq, c.claim_ids, c.contact_ids FROM tb_carried(p, claims, contacts) c
     WHERE c.box = 'o' AND c.seq > acked
    ON CONFLICT (peer, seq) DO UPDATE
        SET claims = fed_redact_waiting.claims || excluded.claims,
            contacts = fed_redact_waiting.contacts || excluded.contacts;
END $$;

-- Messages that waited for their acknowledgement are redacted now that
-- they have it (from the daily purge). Returns how many.
CREATE FUNCTION tb_fed_redact_waiting() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    WITH done AS (
        DELETE FROM fed_redact_waiting w
         USING fed_acked a
         WHERE a.peer = w.peer AND w.seq <= a.out_acked
        RETURNING w.*)
    UPDATE fed_outbox o
       SET body = coalesce(tb_referral_redacted(o.body::jsonb, d.referrals),
                           tb_redact_body(o.body::jsonb, d.claims, d.contacts))::json,
           envelope = ''
      FROM done d
     WHERE o.peer = d.peer AND o.seq = d.seq
       AND coalesce(tb_referral_redacted(o.body::jsonb, d.referrals),
                    tb_redact_body(o.body::jsonb, d.claims, d.contacts)) IS NOT NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- A member's erasure, beyond their own row and transfers: the records they
-- shared with each peer are cleared here, and each peer is told which
-- (tb_on_erasure). Returns the peers told.
CREATE FUNCTION tb_erase_shared(acct bigint) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r record;
    told jsonb := '[]';
BEGIN
    UPDATE xb_exchanges SET description = NULL, fingerprint = NULL
     WHERE member_account = acct AND (description IS NOT NULL OR fingerprint IS NOT NULL);
    -- What peers asked of the member and no broker answered is declined,
    -- as for a member not found: the peer hears so, and an answer to it
    -- after this keeps no words (tb_on_xb_claim_answer, and contacts').
    FOR r IN
        SELECT peer, array_agg(id) AS ids,
               jsonb_agg(jsonb_build_object('claim_id', claim_id, 'reason', 'member_not_found',
                                            'message', '') ORDER BY id) AS items
          FROM xb_claims
         WHERE member_account = acct AND side = 'payer' AND state = 'open'
         GROUP BY peer
    LOOP
        UPDATE xb_claims SET state = 'declined', reason = 'member_not_found',
                             decided_by = 'erasure', decided_at = now()
         WHERE id = ANY (r.ids);
        PERFORM tb_fed_enqueue_items(r.peer, 'xb_claim_answer', r.items);
    END LOOP;
    FOR r IN
        SELECT peer, array_agg(id) AS ids,
               jsonb_agg(jsonb_build_object('contact_id', contact_id, 'accepted', false,
                                            'reason', 'item_not_found', 'message', '')
                         ORDER BY id) AS items
          FROM dir_contacts
         WHERE member_account = acct AND side = 'provider' AND state = 'open'
         GROUP BY peer
    LOOP
        UPDATE dir_contacts SET state = 'declined', reason = 'item_not_found',
                                decided_by = 'erasure', decided_at = now()
         WHERE id = ANY (r.ids);
        PERFORM tb_fed_enqueue_items(r.peer, 'dir_contact_answer', r.items);
    END LOOP;
    FOR r IN
        SELECT peer, array_agg(id) FILTER (WHERE record = 'claim') AS claims,
               array_agg(id) FILTER (WHERE record = 'contact') AS contacts,
               array_agg(id) FILTER (WHERE record = 'exchange') AS xids,
               jsonb_agg(jsonb_build_object('record', record, 'id', id) ORDER BY record, id)
                   AS items
          FROM (SELECT peer, 'claim' AS record, claim_id AS id
                  FROM xb_claims WHERE member_account = acct
                UNION ALL
                SELECT peer, 'contact', contact_id FROM dir_contacts WHERE member_account = acct
                UNION ALL
                SELECT peer, 'exchange', xid FROM xb_exchanges WHERE member_account = acct
                UNION
                SELECT peer, record, id FROM fed_refused_records
                 WHERE member_account = acct) s
         WHERE peer IN (SELECT peer FROM fed_peers)
         GROUP BY peer ORDER BY peer
    LOOP
        PERFORM tb_redact_records(r.peer, coalesce(r.claims, '{}'), coalesce(r.contacts, '{}'),
                                  coalesce(r.xids, '{}'));
        PERFORM tb_fed_enqueue_items(r.peer, 'erasure', r.items);
        told := told || to_jsonb(r.peer);
    END LOOP;
    DELETE FROM fed_refused_records WHERE member_account = acct;
    RETURN told;
END $$;

-- A peer erased one of its members: what we hold of the records it names,
-- which we share with it, is cleared (tb_redact_records). A record it does
-- not share with us is not touched, whatever it names.
CREATE FUNCTION tb_on_erasure(from_peer text, body jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    items jsonb := CASE WHEN jsonb_typeof(body->'items') = 'array' THEN body->'items'
                        ELSE '[]' END;
BEGIN
    PERFORM tb_redact_records(
        from_peer,
        ARRAY(SELECT x->>'id' FROM jsonb_array_elements(items) x
               WHERE x->>'record' = 'claim' AND length(x->>'id') <= 80),
        ARRAY(SELECT x->>'id' FROM jsonb_array_elements(items) x
               WHERE x->>'record' = 'contact' AND length(x->>'id') <= 80),
        ARRAY(SELECT x->>'id' FROM jsonb_array_elements(items) x
               WHERE x->>'record' = 'exchange' AND length(x->>'id') <= 80));
    RETURN '{}';
END $$;

-- Free text with a person's details taken out: each of terms (their name,
-- each word of it, e-mail, address and each part and word of it), matched
-- as whole words, whatever the case (in any script, where the database
-- has ICU's collations; in ASCII where it has not), a postcode however it
-- is spaced; and each of phones with any separators between its digits,
-- in its international form (+44 7700 ..., 0044 7700 ..., +44 (0)7700
-- ...) as well as its national one (07700 ...).
CREATE FUNCTION tb_scrub(t text, terms text[], phones text[] DEFAULT '{}') RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    icu boolean := EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu');
    term text;
    pc text[];
    pattern text;
    digits text;
    national text;
BEGIN
    IF t IS NULL THEN
        RETURN NULL;
    END IF;
    -- The longest first, so that a name goes before the words in it.
    FOR term IN SELECT w FROM (SELECT DISTINCT btrim(x) AS w FROM unnest(terms) x) d
                 WHERE length(w) >= 2 ORDER BY length(w) DESC, w LOOP
        pc := regexp_match(term, '^([A-Za-z]{1,2}[0-9][A-Za-z0-9]?)[[:space:]]*([0-9][A-Za-z]{2})$');
        pattern := '(?<![[:alnum:]])'
                   || CASE WHEN pc IS NOT NULL THEN pc[1] || '[[:space:]-]*' || pc[2]
                           ELSE regexp_replace(term, '([^[:alnum:][:space:]])', '\\\1', 'g') END
                   || '(?![[:alnum:]])';
        t := tb_scrub_one(t, pattern, icu);
    END LOOP;
    FOR term IN SELECT DISTINCT x FROM unnest(phones) x LOOP
        digits := regexp_replace(term, '[^0-9]', '', 'g');
        CONTINUE WHEN length(digits) < 6;
        -- The number without its country code or trunk prefix, then each
        -- form it is written in.
        national := CASE WHEN digits ~ '^00440' THEN substr(digits, 6)
                         WHEN digits ~ '^0044' THEN substr(digits, 5)
                         WHEN digits ~ '^440' AND term ~ '^[[:space:]]*\+' THEN substr(digits, 4)
                         WHEN digits ~ '^44' AND term ~ '^[[:space:]]*\+' THEN substr(digits, 3)
                         WHEN digits ~ '^0' THEN substr(digits, 2)
                         ELSE digits END;
        pattern := '(?<![0-9])(?:(?:\+|00)?44[^0-9[:alpha:]]{0,3}(?:\(?0\)?[^0-9[:alpha:]]{0,3})?|0)?'
                   || array_to_string(regexp_split_to_array(national, ''), '[^0-9[:alpha:]]{0,3}')
                   || '(?![0-9])';
        t := tb_scrub_one(t, pattern, icu);
    END LOOP;
    RETURN t;
END $$;

CREATE FUNCTION tb_scrub_one(t text, pattern text, icu boolean) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF icu THEN
        RETURN regexp_replace(t COLLATE "und-x-icu", pattern, '[erased]', 'gi');
    END IF;
    RETURN regexp_replace(t, pattern, '[erased]', 'gi');
END $$;

-- The words of a member's details, for tb_scrub: the name and each part
-- of it (split at spaces, and again at hyphens and apostrophes), the
-- e-mail and its local part, and the address, each line or part of it,
-- each word of three letters or more (a street, a town), and its postcode.
CREATE FUNCTION tb_member_terms(m members) RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    WITH parts AS (
        SELECT regexp_split_to_table(coalesce(m.address, ''), '\s*[,;\n]\s*') AS part)
    SELECT array_remove(ARRAY[m.name, m.email, m.address, tb_postcode(m.address)]
                        || regexp_split_to_array(coalesce(m.name, ''), '[[:space:]]+')
                        || regexp_split_to_array(coalesce(m.name, ''), '[[:space:]''’-]+')
                        || regexp_split_to_array(coalesce(m.email, ''), '@')
                        || coalesce((SELECT array_agg(part) FROM parts), '{}')
                        || coalesce((SELECT array_agg(tb_postcode(part)) FROM parts), '{}')
                        || ARRAY(SELECT w FROM regexp_split_to_table(coalesce(m.address, ''),
                                                                     '[^[:alpha:]''’-]+') w
                                  WHERE length(w) >= 3), NULL)
$$;

-- A member's phone numbers, for tb_scrub: the phone field may hold more
-- than one ("01206 500100 / 07700 900123", "... or ...", "... ext 12").
CREATE FUNCTION tb_member_phones(m members) RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(btrim(p)), '{}')
      FROM regexp_split_to_table(coalesce(m.phone, ''),
                                 '[/,;]|\m(?:or|and|ext|extension|x)\M\.?', 'i') p
     WHERE length(regexp_replace(p, '[^0-9]', '', 'g')) >= 6
$$;
