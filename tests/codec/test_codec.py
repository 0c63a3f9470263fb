"""The codec itself: AES-256-GCM envelopes, key files, rotation, and the refusals."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from ledgerflow.codec import (
    AesGcmCodec,
    CodecKeyNeeded,
    KeyFileError,
    PayloadDecodeError,
    UnknownCodecKey,
    decode,
    decode_tree,
    encode,
    is_encoded,
)
from ledgerflow.codec.keyfile import read_key_file, rotate_key_file, write_new_key_file

KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))
SECRET = {"card": "4111-1111-1111-1111", "amount": 12.5, "tags": ["x", None]}


def codec(**keys: bytes) -> AesGcmCodec:
    return AesGcmCodec(keys or {"a": KEY_A}, active=next(iter(keys or {"a": KEY_A})))


def test_a_payload_round_trips_as_a_json_envelope_naming_codec_and_key() -> None:
    envelope = encode(codec(), SECRET)
    assert set(envelope) == {"_ledgerflow_codec", "kid", "data"}
    assert envelope["_ledgerflow_codec"] == "aes256-gcm/1" and envelope["kid"] == "a"
    assert json.loads(json.dumps(envelope)) == envelope  # still a JSON value
    assert "4111" not in json.dumps(envelope)
    assert decode(codec(), envelope) == SECRET
    raw = base64.b64decode(envelope["data"])
    assert len(raw) == 12 + len(json.dumps(SECRET, separators=(",", ":"))) + 16  # nonce, ciphertext, tag


def test_every_encoding_has_its_own_nonce() -> None:
    first, second = encode(codec(), "same"), encode(codec(), "same")
    assert first["data"][:16] != second["data"][:16]
    assert decode(codec(), first) == decode(codec(), second) == "same"


def test_without_a_codec_nothing_changes_and_an_envelope_is_refused_by_name() -> None:
    assert encode(None, SECRET) is SECRET
    assert decode(None, SECRET) is SECRET
    with pytest.raises(CodecKeyNeeded, match=r"needs a codec key.*LEDGERFLOW_CODEC_KEYS_FILE") as caught:
        decode(None, encode(codec(), SECRET))
    assert caught.value.key_id == "a"


def test_a_tampered_payload_is_refused() -> None:
    envelope = encode(codec(), SECRET)
    raw = bytearray(base64.b64decode(envelope["data"]))
    raw[20] ^= 1
    tampered = {**envelope, "data": base64.b64encode(bytes(raw)).decode()}
    with pytest.raises(PayloadDecodeError, match="failed its integrity check"):
        decode(codec(), tampered)


def test_a_key_id_swapped_in_the_envelope_is_refused() -> None:
    """The associated data binds the key id: relabelling a payload fails even when both keys
    are the same bytes."""
    two = AesGcmCodec({"a": KEY_A, "b": KEY_A}, active="a")
    envelope = encode(two, SECRET)
    with pytest.raises(PayloadDecodeError, match="'b' failed its integrity check"):
        decode(two, {**envelope, "kid": "b"})


def test_a_wrong_key_under_the_right_id_is_refused() -> None:
    envelope = encode(codec(a=KEY_A), SECRET)
    with pytest.raises(PayloadDecodeError, match="is not the one that encoded it"):
        decode(codec(a=KEY_B), envelope)


def test_an_unknown_key_id_is_named() -> None:
    envelope = encode(codec(old=KEY_A), SECRET)
    with pytest.raises(UnknownCodecKey, match=r"codec key 'old'.*keys here: new") as caught:
        decode(codec(new=KEY_B), envelope)
    assert caught.value.key_id == "old"


@pytest.mark.parametrize(
    "envelope",
    [
        {"_ledgerflow_codec": "aes256-gcm/1", "kid": "a", "data": "not base64!"},
        {"_ledgerflow_codec": "aes256-gcm/1", "kid": "a", "data": 7},
        {"_ledgerflow_codec": "aes256-gcm/1", "kid": "a", "data": "AAAA"},
        {"_ledgerflow_codec": "aes256-gcm/1", "data": "AAAA"},
        {"_ledgerflow_codec": "zstd/1", "kid": "a", "data": "AAAA"},
    ],
)
def test_a_malformed_or_foreign_envelope_is_refused(envelope: dict[str, object]) -> None:
    with pytest.raises(PayloadDecodeError):
        decode(codec(), envelope)


def test_decode_tree_decodes_every_envelope_in_a_record() -> None:
    c = codec()
    record = {"input": encode(c, SECRET), "args": [encode(c, 1), encode(c, "two")], "status": "RUNNING"}
    assert decode_tree(c, record) == {"input": SECRET, "args": [1, "two"], "status": "RUNNING"}
    assert not is_encoded(SECRET) and is_encoded(record["input"])


def test_the_key_file_is_private_and_rotation_keeps_old_payloads_readable(tmp_path: Path) -> None:
    path = tmp_path / "codec-keys.json"
    first = write_new_key_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    old = read_key_file(path)
    envelope = encode(old, SECRET)
    second = rotate_key_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    rotated = read_key_file(path)
    assert rotated.active == second != first and rotated.key_ids == sorted([first, second])
    assert decode(rotated, envelope) == SECRET  # encoded with the old key
    assert encode(rotated, SECRET)["kid"] == second  # new payloads use the new key
    with pytest.raises(UnknownCodecKey, match=second):
        decode(old, encode(rotated, SECRET))  # a component still on the old file names the key
    with pytest.raises(FileExistsError):
        write_new_key_file(path)


def test_key_file_errors_name_the_problem_never_a_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    short = base64.b64encode(b"k" * 16).decode()
    path.write_text(json.dumps({"active": "a", "keys": {"a": short}}))
    with pytest.raises(KeyFileError, match="must be 32 bytes") as caught:
        read_key_file(path)
    assert short not in str(caught.value)
    path.write_text(json.dumps({"active": "b", "keys": {"a": base64.b64encode(KEY_A).decode()}}))
    with pytest.raises(KeyFileError, match="active codec key 'b' is not among"):
        read_key_file(path)
    path.write_text("{")
    with pytest.raises(KeyFileError, match="is not JSON"):
        read_key_file(path)
    with pytest.raises(KeyFileError, match="cannot read"):
        read_key_file(tmp_path / "missing.json")


def test_the_codec_never_shows_its_keys() -> None:
    shown = repr(codec(a=KEY_A))
    assert shown == "AesGcmCodec(active='a', key_ids=['a'])"
    assert base64.b64encode(KEY_A).decode() not in shown
