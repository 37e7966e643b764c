import json
import stat

from django.core.management import call_command
from py_vapid import Vapid


def test_saving_keys_writes_an_owner_only_pair_that_signs(settings, tmp_path, capsys):
    settings.VAPID_PUBLIC_KEY = settings.VAPID_PRIVATE_KEY = ""
    settings.VAPID_KEYS_FILE = tmp_path / "vapid-keys.json"

    call_command("generate_vapid_keys", "--save")

    pair = json.loads(settings.VAPID_KEYS_FILE.read_text())
    assert stat.S_IMODE(settings.VAPID_KEYS_FILE.stat().st_mode) == 0o600
    signer = Vapid.from_raw(pair["private_key"].encode())
    assert signer.sign({"aud": "https://fcm.googleapis.com", "sub": "mailto:a@b.c"})["Authorization"].startswith("vapid")


def test_saving_keys_keeps_a_configured_pair(settings, tmp_path):
    settings.VAPID_PUBLIC_KEY, settings.VAPID_PRIVATE_KEY = "pub", "priv"
    settings.VAPID_KEYS_FILE = tmp_path / "vapid-keys.json"

    call_command("generate_vapid_keys", "--save")

    assert not settings.VAPID_KEYS_FILE.exists()


def test_printing_keys_gives_environment_lines(capsys):
    call_command("generate_vapid_keys")
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("VAPID_PUBLIC_KEY=B") and out[1].startswith("VAPID_PRIVATE_KEY=")
