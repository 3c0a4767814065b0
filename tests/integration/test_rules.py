"""The ledger's rules on both of its paths: a batch of exchanges that
nothing in it refuses is posted set-wise, one that something refuses goes
item by item, and each rule is written once for both. The same randomised
batches go through a batch as the daemon sends it, at one bank's database,
and through the one-at-a-time functions, at another's made the same way:
the answers and the books must be the same."""

import json
import os
import random
import re
import subprocess

import pytest

from tbtest import Bank

MEMBERS = 6           # 7 is nobody
SUSPENDED = 6
FLOOR = -600          # the bank's default floor, in minutes


def psql(cluster, db, script):
    r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-v",
                        "VERBOSITY=default", "-d", cluster.conninfo(db), "-f", "-"],
                       input=script, capture_output=True, text=True)
    return r


def literal(value):
    return "'" + json.dumps(value).replace("'", "''") + "'"


def new_bank(cluster, workdir, name):
    """A bank's database as its daemon leaves it, with members, some hours
    and a peer, and nothing else."""
    db = cluster.new_database()
    os.mkdir(f"{workdir}/{name}")
    bank = Bank(f"{workdir}/{name}", cluster.conninfo(db)).start()
    assert bank.stop() == 0
    r = psql(cluster, db, f"""
        SELECT tb_member_add(jsonb_build_object('name', 'Member ' || g), 'test')
          FROM generate_series(1, {MEMBERS}) g;
        SELECT tb_grant(jsonb_build_object('member', g, 'minutes', 240 * g,
                                           'idempotency_key', 'grant' || g), 'test', -100000)
          FROM generate_series(1, {MEMBERS}) g;
        SELECT tb_member_update({SUSPENDED}, '{{"status": "suspended"}}', 'test', {FLOOR});
        SELECT tb_fed_peers(ARRAY['westminster', 'national'], ARRAY['bank', 'observer'],
                            ARRAY[600, 0]);
    """)
    assert r.returncode == 0, r.stderr
    return db


def member(rng):
    """Mostly one who may take part; now and then the suspended one, or
    nobody."""
    return rng.randint(1, SUSPENDED - 1) if rng.random() < 0.94 else rng.choice([SUSPENDED, 7])


def random_item(rng, used_keys):
    p = {"minutes": rng.choice([15, 30, 60, 90, 120, 240, 480]),
         "category": rng.choice(["lifts", "gardening", "befriending"]),
         "payer": member(rng)}
    if rng.random() < 0.3:
        p["description"] = rng.choice(["to the surgery", "weeding, \"the back\"", "tea"])
    when = rng.random()
    if when < 0.03:
        p["performed_on"] = "2999-01-01"
    elif when < 0.4:
        p["performed_on"] = "2026-01-15"
    if used_keys and rng.random() < 0.04:
        p["idempotency_key"] = rng.choice(used_keys)       # a retry, or a conflict
    else:
        p["idempotency_key"] = f"k{len(used_keys)}-{rng.random():.6f}"
        used_keys.append(p["idempotency_key"])
    if rng.random() < 0.35:
        p["bank"] = rng.choice(["westminster"] * 30 + ["national", "nowhere"])
        if rng.random() < 0.8:
            p["earner"] = rng.randint(1, 400)
        return {"xb": True, "actor": "broker", "p": p}
    p["earner"] = p["payer"] if rng.random() < 0.03 else member(rng)
    return {"xb": False, "actor": "broker", "p": p}


def random_batch(rng, used_keys):
    """Mostly of one kind, as the daemon's batches mostly are; now and then
    mixed."""
    n = rng.randint(1, 8)
    items = [random_item(rng, used_keys) for _ in range(n)]
    if rng.random() < 0.8:
        xb = items[0]["xb"]
        items = [i for i in items if i["xb"] == xb] or items[:1]
    return items


def through_the_batch(cluster, db, items):
    """As the daemon sends it: (rows, whether it was posted set-wise)."""
    r = psql(cluster, db, f"""
        BEGIN;
        SELECT coalesce(json_agg(json_build_object('ok', ok, 'body', body, 'code', code,
                                                   'detail', detail)), '[]')
          FROM tb_exchange_batch({literal(items)}::jsonb, {FLOOR}, 'colchester');
        SELECT coalesce(current_setting('tb.batch_path', true), '');
        COMMIT;
    """)
    assert r.returncode == 0, r.stderr
    rows, path = r.stdout.split("\n")[:2]
    return [(x["ok"], json.loads(x["body"]) if x["ok"] else None, x["code"], x["detail"])
            for x in json.loads(rows)], path == "set-wise"


def one_at_a_time(cluster, db, items):
    """Each item through the function that takes one."""
    rows = []
    for it in items:
        call = ("tb_xb_record({p}::jsonb, 'broker', {f}, 'colchester')" if it["xb"] else
                "tb_exchange_record({p}::jsonb, 'broker', {f})").format(p=literal(it["p"]),
                                                                       f=FLOOR)
        r = psql(cluster, db, f"SELECT {call};")
        if r.returncode == 0:
            rows.append((True, json.loads(r.stdout), None, None))
        else:
            m = re.search(r"ERROR:  (\w+)\n(?:DETAIL:  (.*)\n)?", r.stderr)
            assert m, r.stderr
            rows.append((False, None, m.group(1), m.group(2)))
    return rows


def normalised(rows, ids):
    """Answers with what differs by design put aside: when a row was
    written, and the ids a set-wise batch drew and did not use."""
    out = []
    for ok, body, code, detail in rows:
        if body is not None:
            body = dict(body)
            body.pop("created_at")
            if body.get("cross_bank"):
                body["id"] = ids.setdefault(body["id"], f"x{len(ids)}")
        out.append((ok, body, code, detail))
    return out


def books(cluster, db):
    """Every row the two paths write: balances, transfers, cross-bank
    exchanges (without ids and times: one set-wise statement decides a
    message's exchanges at one time), in order."""
    r = psql(cluster, db, """
        SELECT json_build_object(
            'accounts', (SELECT json_agg(json_build_array(id, kind, balance_minutes,
                                                          pending_minutes) ORDER BY id)
                           FROM accounts),
            'transfers', (SELECT json_agg(to_jsonb(t) - 'created_at' ORDER BY id)
                            FROM transfers t),
            'xb', (SELECT json_agg(to_jsonb(x) - 'id' - 'xid' - 'created_at' - 'decided_at'
                                   - 'proposed_seq' ORDER BY id) FROM xb_exchanges x),
            'keys', (SELECT count(*) FROM xb_exchanges WHERE idempotency_key IS NOT NULL));
    """)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batches_answer_and_post_as_one_item_at_a_time_does(cluster, workdir, seed):
    rng = random.Random(seed)
    batched, single = new_bank(cluster, workdir, "a"), new_bank(cluster, workdir, "b")
    used_keys, ids_a, ids_b = [], {}, {}
    set_wise, refusals, kinds = 0, set(), set()
    for n in range(60):
        if n == 45:
            for db in (batched, single):
                psql(cluster, db, "UPDATE fed_peers SET diverged_at = now(), "
                                  "diverged_reason = 'test' WHERE peer = 'westminster'")
        items = random_batch(rng, used_keys)
        a, fast = through_the_batch(cluster, batched, items)
        b = one_at_a_time(cluster, single, items)
        assert normalised(a, ids_a) == normalised(b, ids_b), items
        if fast:
            set_wise += 1
            kinds.add("cross-bank" if items[0]["xb"] else "local")
            assert all(ok for ok, *_ in b), "a batch with a refusal was posted set-wise"
        refusals |= {code for ok, _, code, _ in b if not ok}
    assert books(cluster, batched) == books(cluster, single)
    # Both paths ran, and every kind of refusal came up.
    assert set_wise >= 10 and kinds == {"local", "cross-bank"}, (set_wise, kinds)
    assert refusals >= {"below_floor", "member_inactive", "member_not_found", "same_member",
                        "invalid_date", "unknown_bank", "peer_diverged"}, refusals


def test_same_member_is_refused_on_every_path(cluster, workdir):
    db = new_bank(cluster, workdir, "c")
    before = books(cluster, db)
    item = {"xb": False, "actor": "broker",
            "p": {"payer": 2, "earner": 2, "minutes": 60, "category": "lifts",
                  "idempotency_key": "same"}}
    refusal = (False, None, "same_member", "payer and earner are the same member")
    rows, fast = through_the_batch(cluster, db, [item])
    assert rows == [refusal] and not fast
    assert one_at_a_time(cluster, db, [item]) == [refusal]
    assert books(cluster, db) == before


def random_proposal(rng, sent):
    """What westminster might send: mostly good proposals, and now and then
    one that a rule refuses, one sent before, or one that names a claim,
    contact or exchange to reverse (which go item by item)."""
    if sent and rng.random() < 0.04:
        return dict(rng.choice(sent))                        # resent
    x = {"xid": f"westminster:{len(sent) + 1}", "earner": member(rng),
         "minutes": rng.choice([15, 30, 60, 90, 120]),
         "category": rng.choice(["lifts", "gardening", "befriending"]),
         "performed_on": rng.choice(["2026-01-15", "2026-11-30"]),
         "reverses": "", "claim": "", "contact": ""}
    odd = rng.random()
    if odd < 0.02:
        x["xid"] = rng.choice(["colchester:9", "westminster:", "westminster:1x", "w\"x"])
    elif odd < 0.04:
        x["performed_on"] = rng.choice(["2999-01-01", "2026-02-30", "yesterday"])
    elif odd < 0.06:
        x["category"] = rng.choice(["", "x" * 41, "tab\there"])
    elif odd < 0.08:
        x["minutes"] = rng.choice([0, -60, "60", 10 ** 13, None])
    elif odd < 0.09:
        x["earner"] = rng.choice([0, "x", 10 ** 19])
    elif odd < 0.13:
        x[rng.choice(["reverses", "claim", "contact"])] = "westminster:404"
    sent.append(x)
    return x


def propose_both_ways(cluster, batched, single, items, seq):
    """The message through its handler (set-wise where nothing refuses) at
    one bank, and item by item at the other: (answers, answers, set-wise)."""
    body = literal({"kind": "xb_propose", "items": items})
    r = psql(cluster, batched, f"""
        BEGIN;
        SELECT tb_on_xb_propose('westminster', {body}::jsonb, {seq})->'xb_answer';
        SELECT coalesce(current_setting('tb.batch_path', true), '');
        COMMIT;
    """)
    assert r.returncode == 0, r.stderr
    answers, path = r.stdout.split("\n")[:2]
    one = []
    for x in items:
        r = psql(cluster, single, f"SELECT tb_xb_on_propose('westminster', {literal(x)}::jsonb, {seq});")
        assert r.returncode == 0, r.stderr
        one.append(json.loads(r.stdout))
    return json.loads(answers), one, path == "set-wise"


@pytest.mark.parametrize("seed", [1, 2])
def test_proposals_are_answered_and_posted_as_one_at_a_time_does(cluster, workdir, seed):
    rng = random.Random(seed)
    batched, single = new_bank(cluster, workdir, "p"), new_bank(cluster, workdir, "q")
    sent, set_wise, refusals = [], 0, set()
    for n in range(50):
        if n in (0, 30):
            # What westminster may owe: reached before the 30th, then raised.
            for db in (batched, single):
                psql(cluster, db, "SELECT tb_fed_peers(ARRAY['westminster'], ARRAY['bank'], "
                                  f"ARRAY[{3000 if n == 0 else 100000}])")
        items = [random_proposal(rng, sent) for _ in range(rng.randint(1, 6))]
        a, b, fast = propose_both_ways(cluster, batched, single, items, n + 1)
        assert a == b, items
        if fast:
            set_wise += 1
            assert all(x["accepted"] for x in b), "a message with a refusal was posted set-wise"
        refusals |= {x["reason"] for x in b if not x["accepted"]}
    assert books(cluster, batched) == books(cluster, single)
    assert set_wise >= 8, set_wise
    assert refusals >= {"invalid_request", "member_not_found", "member_inactive",
                        "invalid_hours", "exposure_limit", "exchange_not_found",
                        "claim_not_found", "contact_not_found"}, refusals
