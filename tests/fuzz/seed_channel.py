"""Seeds for fuzz_channel: runs of the bodies a peer sends, as the target
reads them (a 2-byte length, a flag byte: 1 for a message of the channel's
stream, 0 for a session message, then the serialized Body)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import wire  # noqa: E402

f = wire.field


def run(*bodies):
    out = b""
    for in_stream, body in bodies:
        out += len(body).to_bytes(2, "big") + bytes([in_stream]) + body
    return out


day = "2026-11-30"
seeds = {
    "proposals": run((1, wire.proposals([("cheshire:1", 1, 60, "lifts", day),
                                         ("cheshire:2", 2, 90, "gardening", day)]))),
    "answers": run((1, wire.answers([("colchester:1", True, ""),
                                     ("colchester:2", False, "member_not_found")]))),
    "claims": run((1, f(19, f(1, f(1, "cheshire:c1") + f(2, 1) + f(3, 60) + f(4, "lifts") +
                             f(5, day) + f(6, "thanks") + f(7, 4))))),
    "contacts": run((1, f(21, f(1, f(1, "cheshire:k1") + f(2, "abc123") + f(3, "hello"))))),
    "erasure": run((1, f(23, f(1, f(1, "claim") + f(2, "cheshire:c1")) +
                             f(1, f(1, "contact") + f(2, "colchester:k1"))))),
    "referrals": run((1, f(26, f(1, f(1, "cheshire:r1") + f(2, "move") + f(3, 4) +
                                 f(5, "name") + f(5, "phone") + f(6, "in person") +
                                 f(8, "brenda") + f(9, "2026-11-30T10:00:00Z") +
                                 f(10, "Ann") + f(12, "01270 500100") + f(20, 90)))),
                     (1, f(27, f(1, f(1, "colchester:r1") + f(2, "accepted") + f(3, 31) +
                                 f(6, day)))),
                     (1, f(28, f(1, f(1, "cheshire:r1"))))),
    "test": run((1, wire.test_body(1)), (1, wire.test_body(2, "two"))),
    "session": run((0, f(2, f(1, 0) or b"")), (0, f(4, f(1, 0) + f(2, b"\0" * 32))),
                   (0, f(6, f(2, 1000))), (0, f(8, b"") or b"\x42\x00"),
                   (0, f(7, f(1, 0) + f(2, 5) + f(4, f(1, "h1") + f(3, "offer") +
                                                     f(4, "lifts") + f(5, "lifts") +
                                                     f(8, day) + f(9, 5))))),
    "mixed": run((1, wire.test_body(1)), (0, f(6, f(2, 10))),
                 (1, wire.proposals([("cheshire:3", 1, 30, "lifts", day)]))),
}
out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out_dir, "seed-" + name), "wb") as fh:
        fh.write(data)
