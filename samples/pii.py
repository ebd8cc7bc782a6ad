"""Personal data and secrets for the sample traces, with their positions.

Contract:
- ``PiiPool`` is built once per process from a seeded Faker, so the same seed gives the same
  names, emails, phones, card numbers, addresses, national ids and API keys.
- ``render_pii_text`` fills a template such as ``"I'm {PERSON}, reach me at {EMAIL_ADDRESS}"``
  and returns the text plus the inserted ``(value, entity_type)`` pairs.
- ``locate_pii`` finds every occurrence of those values in a string attribute. Positions are
  Python ``str`` indices (code points) into the attribute's string value, end exclusive. The
  generator calls it on every string attribute, event attribute and status message of a trace that received
  personal data, so a value copied into a prompt, a template variable or an exception message
  is located in each place it appears.
- Entity types follow Presidio's names (PERSON, EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD,
  US_SSN, LOCATION) plus API_KEY for secrets.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

from faker import Faker

ENTITY_TYPES = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "LOCATION",
    "API_KEY",
)
_POOL_SIZE = 400
_PLACEHOLDER = re.compile(r"\{([A-Z_]+)\}")


@dataclass(frozen=True, slots=True)
class PiiValue:
    """One inserted entity: its exact text and its type."""

    text: str
    entity_type: str


def _make_api_keys(rng: random.Random, count: int) -> list[str]:
    alnum = string.ascii_letters + string.digits
    upper = string.ascii_uppercase + string.digits
    keys: list[str] = []
    for i in range(count):
        kind = i % 5
        if kind == 0:
            keys.append("sk-proj-" + "".join(rng.choices(alnum, k=48)))
        elif kind == 1:
            keys.append("AKIA" + "".join(rng.choices(upper, k=16)))
        elif kind == 2:
            keys.append("ghp_" + "".join(rng.choices(alnum, k=36)))
        elif kind == 3:
            keys.append("sk_live_" + "".join(rng.choices(alnum, k=32)))
        else:
            keys.append(
                "xoxb-"
                + "-".join("".join(rng.choices(string.digits, k=12)) for _ in range(2))
                + "-"
                + "".join(rng.choices(alnum, k=24))
            )
    return keys


def _format_card(rng: random.Random, number: str) -> str:
    style = rng.randrange(3)
    if style == 0 or len(number) != 16:
        return number
    sep = " " if style == 1 else "-"
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


class PiiPool:
    """Seeded pools of Faker values, one list per entity type."""

    def __init__(self, seed: int) -> None:
        fake = Faker("en_US")
        fake.seed_instance(seed)
        rng = random.Random(f"pii-{seed}")
        self.values: dict[str, list[str]] = {
            "PERSON": [fake.name() for _ in range(_POOL_SIZE)],
            "EMAIL_ADDRESS": [fake.free_email() for _ in range(_POOL_SIZE)],
            "PHONE_NUMBER": [fake.phone_number() for _ in range(_POOL_SIZE)],
            "CREDIT_CARD": [
                _format_card(rng, fake.credit_card_number(card_type="visa16"))
                for _ in range(_POOL_SIZE)
            ],
            "US_SSN": [fake.ssn() for _ in range(_POOL_SIZE)],
            "LOCATION": [fake.address().replace("\n", ", ") for _ in range(_POOL_SIZE)],
            "API_KEY": _make_api_keys(rng, _POOL_SIZE),
        }

    def pick(self, rng: random.Random, entity_type: str) -> str:
        """Return one value of the given type."""
        return rng.choice(self.values[entity_type])


def render_pii_text(template: str, pool: PiiPool, rng: random.Random) -> tuple[str, list[PiiValue]]:
    """Fill ``{ENTITY}`` placeholders with pool values; return the text and what was inserted."""
    inserted: list[PiiValue] = []

    def _fill(match: re.Match[str]) -> str:
        value = pool.pick(rng, match.group(1))
        inserted.append(PiiValue(value, match.group(1)))
        return value

    return _PLACEHOLDER.sub(_fill, template), inserted


def locate_pii(text: str, values: Sequence[PiiValue]) -> list[tuple[int, int, str, str]]:
    """Return ``(start, end, entity_type, value)`` for every occurrence of each value in text."""
    found: list[tuple[int, int, str, str]] = []
    for value in values:
        start = text.find(value.text)
        while start != -1:
            found.append((start, start + len(value.text), value.entity_type, value.text))
            start = text.find(value.text, start + 1)
    return found


# Templates that wrap a user's request with personal data. Each service adds its own.
SUPPORT_PII_PREFIXES = (
    "Hi, this is {PERSON} ({EMAIL_ADDRESS}). ",
    "My name is {PERSON} and my account email is {EMAIL_ADDRESS}. ",
    "Account holder: {PERSON}, phone {PHONE_NUMBER}. ",
    "I was charged twice on my card {CREDIT_CARD}. ",
    "Please call me back on {PHONE_NUMBER}. ",
    "hey - {EMAIL_ADDRESS} here. ",
    "Billing address is {LOCATION}. ",
    "For verification my SSN is {US_SSN}. ",
    "I'm {PERSON}, ship to {LOCATION}. ",
)
SUPPORT_PII_SUFFIXES = (
    " You can reach me at {EMAIL_ADDRESS}.",
    " Thanks, {PERSON}",
    " My number is {PHONE_NUMBER} if that helps.",
    " (card on file ends {CREDIT_CARD})",
    " Here is the key we use: {API_KEY}",
)
CONFIG_PASTES = (
    "\n\nconfig.yaml:\nnimbus:\n  api_key: {API_KEY}\n  region: eu-west-1\n  timeout_s: 30\n",
    "\n\n.env\nNIMBUS_API_KEY={API_KEY}\nNIMBUS_ENDPOINT=https://api.nimbus.example/v2\n",
    "\n\nexport OPENAI_API_KEY={API_KEY}\nexport LOG_LEVEL=debug\n",
    "\n\ncurl -H 'Authorization: Bearer {API_KEY}' https://api.nimbus.example/v2/projects\n",
)
