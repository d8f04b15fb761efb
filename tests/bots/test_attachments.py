"""The encrypted m.file content: built without a server, decryptable with what it carries."""

from __future__ import annotations

from nio.crypto.attachments import decrypt_attachment, encrypt_attachment

from hub.bots.attachments import file_message, upload_marker


def test_file_content_carries_the_keys_in_a_file_object_and_no_top_level_url() -> None:
    data = b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"
    ciphertext, keys = encrypt_attachment(data)
    content = file_message("concertation.planned", "R-2026-0001", "concertation-R-2026-0001.ics", "text/calendar",
                           len(data), "mxc://example.org/abc", keys)
    assert content["msgtype"] == "m.file" and "url" not in content
    assert content["fr.relais.kind"] == "concertation.planned" and content["fr.relais.case"] == "R-2026-0001"
    assert content["info"] == {"mimetype": "text/calendar", "size": len(data)}
    file = content["file"]
    assert file["url"] == "mxc://example.org/abc" and file["v"] == "v2" and file["key"]["alg"] == "A256CTR"
    assert decrypt_attachment(ciphertext, file["key"]["k"], file["hashes"]["sha256"], file["iv"]) == data


def test_upload_marker_fits_the_key_column_and_is_per_entry() -> None:
    long_key = "cmd:$" + "x" * 120 + ":1"
    assert len(upload_marker(long_key)) <= 64
    assert upload_marker("a") != upload_marker("b") and upload_marker("a") == upload_marker("a")
