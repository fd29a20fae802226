#!/usr/bin/env python3
"""An independent verifier of apinode's audit proofs (docs/integrity.md).

Written from RFC 9162 (sections 2.1.3.2 and 2.1.4.2) and the C2SP signed-note
and tlog-checkpoint specifications, with Python's `cryptography` for Ed25519:
it shares no code with the Rust implementation that made the proofs.

    tlog_check.py prove VERIFIER_KEY PROOF.json
        checks a proof written by `apinode-admin audit-prove`
    tlog_check.py chain VERIFIER_KEY EVENT_SERVER_ROOT
        checks every stored `audit-checkpoint` event: its signature, and the
        consistency proof from the checkpoint before it, origin by origin

Prints one line starting with OK and exits 0, or prints why and exits 1.
"""

import base64
import hashlib
import json
import os
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Invalid(Exception):
    pass


def parse_verifier_key(text):
    name, key_id_hex, key_b64 = text.strip().split("+", 2)
    raw = base64.b64decode(key_b64, validate=True)
    if len(raw) != 33 or raw[0] != 0x01:
        raise Invalid("not an Ed25519 verifier key")
    public = raw[1:]
    key_id = hashlib.sha256(name.encode() + b"\n" + b"\x01" + public).digest()[:4]
    if key_id.hex() != key_id_hex:
        raise Invalid("the key ID does not match the key")
    return name, key_id, Ed25519PublicKey.from_public_bytes(public)


def open_checkpoint(key, note):
    """(origin, size, root) of a note signed by `key`."""
    name, key_id, public = key
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise Invalid("not a signed note")
    body = note[: split + 1]
    for line in note[split + 2 :].splitlines():
        if not line.startswith("\u2014 "):
            raise Invalid("a signature line does not start with an em dash")
        signer, sig_b64 = line[2:].split(" ", 1)
        raw = base64.b64decode(sig_b64, validate=True)
        if signer == name and raw[:4] == key_id:
            try:
                public.verify(raw[4:], body.encode())
            except InvalidSignature:
                raise Invalid("the signature does not verify")
            lines = body.split("\n")
            return lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True)
    raise Invalid("no signature by the key")


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index, size, leaf, proof, root):
    """RFC 9162 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_root, second_root, proof):
    """RFC 9162 2.1.4.2."""
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if first > second or not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


def check_proof(key, proof):
    origin, size, root = open_checkpoint(key, proof["checkpoint"])
    if origin != proof["origin"] or size != proof["treeSize"]:
        raise Invalid("the proof names another tree than its checkpoint")
    hashes = [base64.b64decode(h, validate=True) for h in proof["inclusionProof"]]
    if len(hashes) > max(1, (size - 1).bit_length()):
        raise Invalid("the proof is longer than ceil(log2 n) hashes")
    leaf = leaf_hash(proof["line"].encode())
    if not verify_inclusion(proof["leafIndex"], size, leaf, hashes, root):
        raise Invalid("the line is not at leafIndex in the signed tree")
    return "OK record %d of %s is in the signed tree of %d records (%d hashes)" % (
        proof["leafIndex"], origin, size, len(hashes))


def check_chain(key, root_dir):
    events = []
    for folder, _, files in os.walk(os.path.join(root_dir, "audit-integrity")):
        for f in files:
            if not f.endswith(".jsonl"):
                continue
            for line in open(os.path.join(folder, f), encoding="utf-8"):
                events.append(json.loads(line)["clientEvent"])
    by_origin = {}
    for e in events:
        origin, size, root = open_checkpoint(key, e["checkpoint"])
        if origin != e["origin"] or size != e["treeSize"]:
            raise Invalid("an event names another tree than its checkpoint")
        by_origin.setdefault(origin, {})[size] = (root, e)
    steps = 0
    for origin, sizes in by_origin.items():
        for size, (root, e) in sorted(sizes.items()):
            previous = e.get("previousTreeSize")
            if previous is None or previous not in sizes:
                continue
            proof = [base64.b64decode(h, validate=True) for h in e["consistencyProof"]]
            if not verify_consistency(previous, size, sizes[previous][0], root, proof):
                raise Invalid("%s: %d is not consistent with %d" % (origin, size, previous))
            steps += 1
    if steps == 0:
        raise Invalid("no consistency step to check")
    return "OK %d checkpoints of %d origins, %d consistency proofs verified" % (
        len(events), len(by_origin), steps)


def main():
    mode, key_text, path = sys.argv[1:4]
    try:
        key = parse_verifier_key(key_text)
        if mode == "prove":
            print(check_proof(key, json.load(open(path, encoding="utf-8"))))
        elif mode == "chain":
            print(check_chain(key, path))
        else:
            raise Invalid("unknown mode " + mode)
    except (Invalid, ValueError, KeyError) as e:
        print("INVALID", e)
        sys.exit(1)


if __name__ == "__main__":
    main()
