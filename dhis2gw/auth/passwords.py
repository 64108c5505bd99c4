"""Password hashing (argon2id) off the reactor thread, and the password policy.

argon2 is deliberately slow (tens of milliseconds and tens of MiB per hash): run in the
reactor thread it would stall every other request. ``PasswordHasher`` therefore runs each
hash and verification in the reactor's thread pool (``deferToThreadPool``), so the reactor
it is given must provide ``IReactorThreads``.

Users imported from the original Go dhis2gw (``dhis2gw import-legacy``) keep their bcrypt hash
(``$2a$``/``$2b$``/``$2y$``, as pgcrypto's ``crypt(…, gen_salt('bf'))`` and Go's bcrypt wrote
them): ``verify`` checks those with the ``bcrypt`` library, and ``needs_rehash`` says yes, so the
first successful login replaces the hash with an argon2id one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import argon2
import bcrypt
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from twisted.internet.defer import DeferredSemaphore
from twisted.internet.threads import deferToThreadPool

# A hash of a random string: verified against when the username does not exist, so a
# failed login costs the same time whether or not the user exists (no user enumeration).
_DUMMY_PASSWORD = "dhis2gw-no-such-user-8c1e5f0a"
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


def is_bcrypt(encoded: str) -> bool:
    """True for a bcrypt hash (the original dhis2gw's), False for anything else (argon2id)."""
    return encoded.startswith(BCRYPT_PREFIXES)


class WeakPassword(ValueError):
    """The password does not meet the policy; ``problems`` says why (never the password)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class PasswordPolicy:
    """What a new password must satisfy.

    :param min_length: minimum number of characters.
    :param max_length: upper bound (argon2 would hash megabytes happily; a client should not make it).
    """

    min_length: int = 10
    max_length: int = 1024

    def problems(self, password: str, username: str = "") -> list[str]:
        """Every rule ``password`` breaks, as human sentences (empty when it is acceptable)."""
        found = []
        if len(password) < self.min_length:
            found.append(f"the password must have at least {self.min_length} characters")
        if len(password) > self.max_length:
            found.append(f"the password must have at most {self.max_length} characters")
        if username and password.strip().lower() == username.strip().lower():
            found.append("the password must not be the username")
        if password and len(set(password)) < 3:
            found.append("the password must use at least 3 different characters")
        return found

    def check(self, password: str, username: str = "") -> None:
        """Raise ``WeakPassword`` when ``password`` breaks a rule."""
        found = self.problems(password, username)
        if found:
            raise WeakPassword(found)


class PasswordHasher:
    """argon2id hashing and verification in a thread pool.

    :param reactor: provides ``getThreadPool()`` (IReactorThreads) and ``callFromThread``.
    :param time_cost, memory_cost, parallelism: argon2 parameters (argon2-cffi's defaults,
        RFC 9106's low-memory profile, unless given; tests pass cheap ones).
    :param max_concurrent: KDF runs at once. Each one takes ``memory_cost`` KiB and a core; more
        would starve the reactor thread of CPU and fill the shared thread pool (which also
        resolves host names), so the rest queue here.
    """

    def __init__(self, reactor: Any, time_cost: int = argon2.DEFAULT_TIME_COST,
                 memory_cost: int = argon2.DEFAULT_MEMORY_COST,
                 parallelism: int = argon2.DEFAULT_PARALLELISM, max_concurrent: int = 2) -> None:
        self.reactor = reactor
        self._slots = DeferredSemaphore(max_concurrent)
        self._hasher = argon2.PasswordHasher(time_cost=time_cost, memory_cost=memory_cost,
                                             parallelism=parallelism, type=argon2.Type.ID)
        self._dummy_hash: str | None = None  # made on first use, in a thread

    def _in_thread(self, fn: Any, *args: Any) -> Any:
        return self._slots.run(deferToThreadPool, self.reactor, self.reactor.getThreadPool(), fn, *args)

    async def hash(self, password: str) -> str:
        """The argon2id hash of ``password`` (encoded, with its salt and parameters)."""
        result: str = await self._in_thread(self._hasher.hash, password)
        return result

    def _verify_blocking(self, encoded: str, password: str) -> bool:
        if is_bcrypt(encoded):
            try:
                # bcrypt reads at most 72 bytes; bcrypt 5 refuses longer passwords with ValueError
                # where Go's bcrypt and pgcrypto compared the first 72, so cut them the same way.
                return bool(bcrypt.checkpw(password.encode("utf-8")[:72], encoded.encode("ascii")))
            except ValueError:
                return False
        try:
            return bool(self._hasher.verify(encoded, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def verify(self, encoded: str | None, password: str) -> bool:
        """True when ``password`` matches ``encoded``.

        With ``encoded=None`` (no such user) a dummy hash is verified instead, so the answer
        takes as long as for a real user, and is always False.
        """
        if encoded is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash(_DUMMY_PASSWORD)
            await self._in_thread(self._verify_blocking, self._dummy_hash, password + "x")
            return False
        ok: bool = await self._in_thread(self._verify_blocking, encoded, password)
        return ok

    def needs_rehash(self, encoded: str) -> bool:
        """True when ``encoded`` was made with other parameters than the current ones (or is bcrypt)."""
        if is_bcrypt(encoded):
            return True
        try:
            return bool(self._hasher.check_needs_rehash(encoded))
        except (InvalidHashError, ValueError):
            return True
