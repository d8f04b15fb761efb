"""The Matrix client: login with a fixed device, sync with backoff, nio errors → exceptions.

This is the one place that turns nio's error responses into MatrixError, so callers only
deal with exceptions, split into transient (retry later) and permanent ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

from aiohttp import (
    ClientConnectionError,
    ClientConnectorDNSError,
    ClientError,
    ClientResponse,
    ClientSession,
    ClientSSLError,
    ClientTimeout,
)
from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    Event,
    JoinedMembersError,
    KeysClaimResponse,
    LoginResponse,
    MatrixRoom,
    RoomCreateResponse,
    RoomGetStateResponse,
    RoomMemberEvent,
    RoomPreset,
    RoomSendResponse,
    RoomVisibility,
    ShareGroupSessionResponse,
    SyncResponse,
    UploadResponse,
    WhoamiResponse,
)
from nio.crypto.attachments import encrypt_attachment

from hub.bots.render import shown_name
from hub.config import MatrixConfig, reveal, secret_source
from hub.errors import KeyShareFailed, LoginRefused, MatrixError, RoomNotSynced, SessionLost, TransientError

if TYPE_CHECKING:
    from hub.bots.trust import DeviceTrust

log = logging.getLogger(__name__)

# Lazy-loaded members, a small timeline, no presence: a restart resumes from the stored token
# instead of re-reading every room.
SYNC_FILTER: dict[str, Any] = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {
        "state": {"lazy_load_members": True},
        "timeline": {"limit": 50, "lazy_load_members": True},
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    },
}

#: The longest a rate-limited /sync waits before asking again, whatever retry_after_ms says.
SYNC_429_MAX_S = 30.0

#: How long one /sync waits for news: a quiet hub handles a sync at least this often.
SYNC_LONG_POLL_MS = 30_000


def transient_answer(http_status: int | None, errcode: str | None) -> bool:
    """Classify a homeserver error answer (Matrix C-S API §"API standards"): 429 and 5xx are worth
    retrying, every other 4xx is permanent — the request itself is wrong for this server, whatever
    the errcode (Synapse reports some permanent refusals as M_UNKNOWN). Without an HTTP status (nio
    could not read the answer), only M_LIMIT_EXCEEDED, M_UNKNOWN and no errcode count as transient."""
    if errcode == "M_LIMIT_EXCEEDED" or http_status == 429:
        return True
    if http_status is None:
        return errcode in (None, "M_UNKNOWN")
    return http_status >= 500


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: a transient error answer, a timeout, a dropped or refused
    connection. False for a permanent answer, a room that is gone, a bug (e.g. a bad payload)."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, MatrixError):
        return False
    return isinstance(exc, ClientConnectionError | TimeoutError | ConnectionError)


def http_status_of(response: Any) -> int | None:
    """The HTTP status of the answer behind a nio response (None when there was none)."""
    transport = getattr(response, "transport_response", None)
    status = getattr(transport, "status", None)
    return status if isinstance(status, int) else None


#: The bot's access token is refused: its device was logged out (Matrix C-S spec, "Soft logout").
SESSION_LOST = frozenset({"M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"})


def _check(response: Any, what: str) -> Any:
    if isinstance(response, ErrorResponse):
        code, status = response.status_code, http_status_of(response)
        if code in SESSION_LOST:
            raise SessionLost(what, code, None, status)
        cls = TransientError if transient_answer(status, code) else MatrixError
        raise cls(what, code, response.retry_after_ms, status)
    return response


def transient(exc: BaseException) -> str | None:
    """Why waiting for the homeserver may help, or None (see hub.retry)."""
    if isinstance(exc, ClientSSLError):
        return None  # a certificate problem: the operator's to fix (server_versions says so)
    if isinstance(exc, ClientConnectorDNSError):
        return "host name not resolved"
    if isinstance(exc, ClientConnectionError):
        return "connection refused" if "connect" in type(exc).__name__.lower() else type(exc).__name__
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, TransientError):
        return f"answered {exc.errcode or 'an error'}"
    return None


#: Answers to a login that no wait will fix (Matrix spec, "Login"; Synapse's user lock codes).
_REFUSED_LOGIN = {"M_FORBIDDEN", "M_USER_DEACTIVATED", "M_UNKNOWN_TOKEN", "M_USER_LOCKED",
                  "M_USER_SUSPENDED", "M_INVALID_USERNAME"}


class _NioNoise(logging.Filter):
    """nio warns "Timed out, sleeping for 0s" on every retried request and "Error validating
    response" on every error answer, which this module turns into exceptions and log lines of
    its own: at the default level an operator would read them by the hundred during an outage."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not message.startswith(("Timed out, sleeping", "Error validating response"))


def quiet_nio_noise() -> None:
    """Install the filter on nio's loggers (called once by the CLI)."""
    for name in ("nio.client.async_client", "nio.responses"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NioNoise) for f in logger.filters):
            logger.addFilter(_NioNoise())


#: A 429 is waited out at the transport only while that is short: a longer wait (Synapse's rate
#: limiter can ask for minutes, a proxy for anything) goes back to the caller as a TransientError
#: carrying retry_after_ms, and the outbox holds that one entry (its lane) without holding a
#: request, a lane slot or the room-key lock meanwhile.
_SHORT_429_MS = 5_000.0
#: At most this long waited at the transport for one request, over all its 429s.
_429_BUDGET_MS = 30_000.0


class _RateLimitedClient(AsyncClient):  # type: ignore[misc]
    """nio with short 429s waited out at the transport, before nio parses the answer.

    nio retries a 429 itself only when it can parse the error: for keys/claim and to-device
    (room key sharing) it cannot, so a rate-limited room key share was silently dropped and the
    notice it protected stayed undecryptable for the team. Waiting `retry_after_ms` here covers
    every request, the raw ones (cross-signing, capabilities) included. nio's own 429 loop is off
    (`max_limit_exceeded=0`): it slept whatever `retry_after_ms` said, uncapped and for ever."""

    async def send(self, method: str, path: str, data: Any = None, headers: dict[str, str] | None = None,
                   trace_context: Any | None = None, timeout: float | None = None) -> ClientResponse:  # noqa: ASYNC109
        waited = 0.0
        while True:
            resp: ClientResponse = await super().send(method, path, data, headers, trace_context, timeout)
            if resp.status != 429 or not isinstance(data, str | bytes | None):
                return resp  # (a streamed body cannot be sent twice: the caller retries)
            try:
                wait_ms = (await resp.json(content_type=None)).get("retry_after_ms")
            except (ValueError, AttributeError, ClientError):
                wait_ms = None
            wait = float(wait_ms) if isinstance(wait_ms, int | float) and wait_ms >= 0 else 1000.0
            if wait > _SHORT_429_MS or waited + wait > _429_BUDGET_MS:
                return resp  # nio reads it as an M_LIMIT_EXCEEDED error with its retry_after_ms
            resp.release()
            log.warning("rate limited by the homeserver; retrying in %.0f ms", wait)
            await asyncio.sleep(wait / 1000)
            waited += wait

    # --- room keys delivered, not only sent ---------------------------------------------------
    # nio's share_group_session sends the room key in to-device requests gathered with
    # return_exceptions=True, then marks the outbound session shared whatever happened: a request
    # lost on a dropped connection (after nio's own retries) or refused left some devices without
    # the key, and they could not read a notice until the session rotated. Here a share that did
    # not fully reach the homeserver discards the outbound session and fails the send: the next
    # try makes a new session and shares it with every device again.

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._failed_shares: set[str] = set()  # rooms whose current share lost a request
        self._sharing: str | None = None  # the room whose key is being shared (one at a time)

    async def _send(self, response_class: type, method: str, path: str, data: Any = None,
                    response_data: tuple[Any, ...] | None = None, *args: Any, **kwargs: Any) -> Any:
        if response_class is RoomCreateResponse:
            return await self._send_once(response_class, method, path, data)
        if response_class is KeysClaimResponse and self._sharing is not None:
            # A claim refused during a share (a long 429): the devices it was for would get no key.
            resp = await super()._send(response_class, method, path, data, response_data, *args, **kwargs)
            if isinstance(resp, ErrorResponse):
                self._share_failed(self._sharing)
            return resp
        if response_class is not ShareGroupSessionResponse or not response_data:
            return await super()._send(response_class, method, path, data, response_data, *args, **kwargs)
        room_id = str(response_data[0])
        try:
            resp = await super()._send(response_class, method, path, data, response_data, *args, **kwargs)
        except BaseException:
            self._share_failed(room_id)
            raise
        if isinstance(resp, ErrorResponse):
            self._share_failed(room_id)
        return resp

    async def _send_once(self, response_class: type, method: str, path: str, data: Any) -> Any:
        """One request, never resent by nio after a timeout or a dropped connection: createRoom is
        not idempotent, and Synapse may have made the room whose answer was lost — nio's resend made
        a second room, its members invited twice. The error goes to the outbox, whose next try looks
        for the room by its marker (hub/bots/outbox.py)."""
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.access_token}"}
        url = urlparse(path)  # the token travels in the header, never in the query (as nio does)
        query = urlencode([(k, v) for k, v in parse_qsl(url.query) if k != "access_token"])
        transport = await self.send(method, urlunparse(url._replace(query=query)), data, headers)
        resp = await self.create_matrix_response(response_class, transport)
        await self.receive_response(resp)
        return resp

    def _share_failed(self, room_id: str) -> None:
        self._failed_shares.add(room_id)

    async def share_group_session(self, room_id: str, ignore_unverified_devices: bool = False) -> Any:
        self._failed_shares.discard(room_id)
        self._sharing = room_id
        try:
            resp = await super().share_group_session(room_id, ignore_unverified_devices=ignore_unverified_devices)
        finally:
            self._sharing = None
        if room_id in self._failed_shares:
            self._failed_shares.discard(room_id)
            self.invalidate_outbound_session(room_id)
            raise KeyShareFailed(f"the room key of {room_id} did not reach every device; session discarded")
        return resp


class BotClient:
    def __init__(self, config: MatrixConfig) -> None:
        self.config = config
        self.store = Path(config.store_path)
        self.nio: AsyncClient | None = None
        self._stopping = asyncio.Event()
        self.synced_once = asyncio.Event()
        self.connected = False
        self._room_version: str | None = None
        self._profile_names: dict[str, str] = {}  # user id → profile name ("" when none)
        self.trust: DeviceTrust | None = None  # set by app.py; None shares with every device
        self._share_lock = asyncio.Lock()
        self.new_device = False  # this process created the bot's device (see forget_new_device)
        #: set, with `lost_reason`, when the homeserver refuses the bot's token while it runs
        self.lost = asyncio.Event()
        self.lost_reason = ""

    @property
    def user_id(self) -> str:
        return self.config.user_id

    @property
    def api(self) -> AsyncClient:
        assert self.nio is not None, "login() first"
        return self.nio

    def _session_file(self) -> Path:
        return self.store / "session.json"

    def _new_client(self, device_id: str | None) -> AsyncClient:
        nio_config = AsyncClientConfig(
            encryption_enabled=True,
            store_sync_tokens=False,  # our own token is stored after the events are handled
            max_timeouts=2,
            max_limit_exceeded=0,  # 429s: see _RateLimitedClient
            max_timeout_retry_wait_time=5,
            request_timeout=40,
        )
        return _RateLimitedClient(self.config.homeserver, self.user_id, device_id=device_id or "",
                           store_path=str(self.store), config=nio_config)

    async def server_versions(self) -> list[str]:
        """GET /_matrix/client/versions (no authentication): the spec versions the homeserver
        speaks. Raises TransientError on a 5xx (a proxy before a stopped homeserver), MatrixError
        when the URL answers but is not a Matrix homeserver; connection errors pass through."""
        url = f"{self.config.homeserver}/_matrix/client/versions"
        async with ClientSession(timeout=ClientTimeout(total=15)) as session:
            try:
                return await self._versions(session, url)
            except ClientSSLError as exc:
                raise MatrixError(f"TLS with {self.config.homeserver} failed ({exc}): check its certificate",
                                  "M_TLS") from None

    async def _versions(self, session: ClientSession, url: str) -> list[str]:
        async with session.get(url) as resp:
            if resp.status >= 500:
                raise TransientError("versions", f"HTTP {resp.status}")
            try:
                data = await resp.json(content_type=None)
            except ValueError:
                data = None
            if resp.status != 200 or not isinstance(data, dict) or not isinstance(data.get("versions"), list):
                raise MatrixError(f"{self.config.homeserver} is not a Matrix homeserver "
                                  f"(HTTP {resp.status} on /_matrix/client/versions)", "M_NOT_MATRIX")
            return [str(v) for v in data["versions"]]

    def _refused(self, key: str, errcode: str | None) -> LoginRefused:
        what = "password" if key == "password" else "access token"
        return LoginRefused(
            f"login refused ({errcode}) for {self.user_id} on {self.config.homeserver}: check the "
            f"{what}, which comes from {secret_source(self.config, key)}", errcode)

    async def login(self) -> None:
        """Restore the kept device, or log in once and keep it (never a new device per start).
        Raises LoginRefused (wrong password or token), TransientError or a connection error
        (wait and call again: nothing is left open)."""
        try:
            await self._login()
        except BaseException:
            await self.close()
            self.nio = None
            raise

    async def _login(self) -> None:
        self.store.mkdir(parents=True, exist_ok=True)
        os.chmod(self.store, 0o700)
        session = self._session_file()
        if session.exists():
            saved = json.loads(session.read_text(encoding="utf-8"))
            if saved.get("user_id") != self.user_id:
                raise MatrixError(f"store {self.store} belongs to {saved.get('user_id')}", "M_FORBIDDEN")
            self.nio = self._new_client(saved["device_id"])
            self.nio.restore_login(self.user_id, saved["device_id"], saved["access_token"])
            who = await self.nio.whoami()
            if isinstance(who, ErrorResponse) and who.status_code == "M_UNKNOWN_TOKEN":
                raise LoginRefused(
                    f"the device {saved['device_id']} kept in {session} was logged out on {self.config.homeserver}"
                    f" (M_UNKNOWN_TOKEN): remove {session} to log in again with a new device; the bot's "
                    "cross-signing identity in the store is kept", who.status_code)
            _check(who, "whoami")
            log.info("restored device %s", saved["device_id"])
        elif (access_token := reveal(self.config.access_token)):
            self.nio = self._new_client(None)
            self.nio.access_token = access_token
            who = await self.nio.whoami()
            if isinstance(who, ErrorResponse) and who.status_code in _REFUSED_LOGIN:
                raise self._refused("access_token", who.status_code)
            _check(who, "whoami")
            assert isinstance(who, WhoamiResponse)
            self.nio.restore_login(self.user_id, who.device_id or "", access_token)
            self._save(who.device_id or "", access_token)
        else:
            self.nio = self._new_client(None)
            resp = await self.nio.login(password=reveal(self.config.password) or "",
                                        device_name=self.config.device_name)
            if isinstance(resp, ErrorResponse) and resp.status_code in _REFUSED_LOGIN:
                raise self._refused("password", resp.status_code)
            _check(resp, "login")
            assert isinstance(resp, LoginResponse)
            self.new_device = True
            self._save(resp.device_id, resp.access_token)
            log.info("logged in with new device %s", resp.device_id)
        if self.api.should_upload_keys:
            _check(await self.api.keys_upload(), "keys_upload")

    def _save(self, device_id: str, token: str) -> None:
        path = self._session_file()
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"user_id": self.user_id, "device_id": device_id, "access_token": token}, handle)
        os.replace(tmp, path)

    async def sync_forever(self, since: str | None,
                           handle: Callable[[SyncResponse], Awaitable[None]]) -> None:
        """Sync until stop(); reconnect with backoff when the homeserver goes away."""
        backoff = 1.0
        token = since
        while not self._stopping.is_set():
            try:
                first = not self.synced_once.is_set()
                # Never full_state: a restart resumes from the token like any client, and a room's
                # state is loaded the first time a send needs it (load_room), so the restart does
                # not grow with the number of rooms.
                resp = await self.api.sync(timeout=0 if first else SYNC_LONG_POLL_MS, sync_filter=SYNC_FILTER,
                                           since=token)
                if isinstance(resp, ErrorResponse):
                    if resp.status_code in SESSION_LOST:
                        self._session_lost(resp.status_code)
                        return
                    if resp.retry_after_ms:  # waited at most SYNC_429_MAX_S, a stop heard at once
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._stopping.wait(),
                                                   min(resp.retry_after_ms / 1000, SYNC_429_MAX_S))
                        continue
                    raise TransientError("sync", resp.status_code)
                assert isinstance(resp, SyncResponse)
                if self.trust is not None:
                    # Before any await: no send may use a verdict older than this sync's news.
                    self.trust.forget(list(resp.device_list.changed) + list(resp.device_list.left))
                # nio has taken the bot's rooms from this answer: they are known even if handling
                # the events fails below (and the batch is replayed).
                self.connected = True
                self.synced_once.set()
                await self._crypto_housekeeping()
                await handle(resp)
                token = resp.next_batch
                backoff = 1.0
            except (ClientConnectionError, TimeoutError, TransientError) as exc:
                self.connected = False
                log.warning("sync failed (%s); retrying in %.0f s", type(exc).__name__, backoff)
                try:
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, 30.0)
            except Exception:
                # Handling failed (e.g. the database went away): the token did not advance, so the
                # same events come again after the pause, and commands already claimed stay answered once.
                # Letting the exception out would end the sync task and the hub would stop listening.
                log.exception("handling a sync failed; retrying in %.0f s", backoff)
                try:
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, 30.0)

    def _session_lost(self, errcode: str) -> None:
        """No retry brings a logged-out device back: say what happened and what to do, once, and
        end the sync (the hub stops; the outbox keeps what it had not sent)."""
        self.connected = False
        device = self.nio.device_id if self.nio is not None else "?"
        session = self._session_file()
        self.lost_reason = (
            f"the bot's device {device} was logged out on {self.config.homeserver} while Relais ran ({errcode}: "
            "its access token was revoked, or the account's password changed): the notices not yet sent are "
            f"kept; remove {session} and start Relais again to log in with a new device")
        log.error("%s", self.lost_reason)
        self.lost.set()

    async def _crypto_housekeeping(self) -> None:
        api = self.api
        if api.should_upload_keys:
            await api.keys_upload()
        if api.should_query_keys:
            await api.keys_query()
        if api.should_claim_keys:
            await api.keys_claim(api.get_users_for_key_claiming())
        await api.send_to_device_messages()

    async def forget_new_device(self) -> None:
        """A start refused after this process logged in: log the new device out (so members'
        clients do not encrypt for a device nobody runs) and forget it locally. A device restored
        from the store is never touched."""
        if not self.new_device or self.nio is None:
            return
        device_id = self.nio.device_id
        try:
            resp = await self.nio.logout()
        except (ClientConnectionError, TimeoutError) as exc:
            log.warning("could not log out device %s after the refused start (%s): delete it from "
                        "the bot's account by hand", device_id, type(exc).__name__)
            return
        if isinstance(resp, ErrorResponse):
            log.warning("could not log out device %s after the refused start (%s)", device_id, resp.status_code)
            return
        self.new_device = False
        self._session_file().unlink(missing_ok=True)
        # nio's olm account for that device: useless now, and a next start must not restore it.
        (self.store / f"{self.user_id}_{device_id}.db").unlink(missing_ok=True)
        log.info("device %s logged out: the start was refused", device_id)

    def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        # Never log out: the device and its keys must survive the restart.
        if self.nio is not None:
            await self.nio.close()

    # --- the operations the outbox performs -------------------------------------------------

    async def create_room(self, spec: dict[str, Any]) -> str:
        resp = await self.api.room_create(
            visibility=RoomVisibility(spec["visibility"]),
            name=spec["name"],
            preset=RoomPreset(spec["preset"]),
            is_direct=spec["is_direct"],
            invite=spec.get("invite", ()),
            initial_state=spec["initial_state"],
            power_level_override=spec["power_level_override"],
            federate=spec["federate"],
            room_version=spec.get("room_version"),
        )
        _check(resp, "create_room")
        assert isinstance(resp, RoomCreateResponse)
        return str(resp.room_id)

    async def default_room_version(self) -> str:
        """The homeserver's default room version (it decides how creators hold power)."""
        if self._room_version is None:
            method, path = "GET", "/_matrix/client/v3/capabilities"
            resp = await self.api.send(method, path, headers={"Authorization": f"Bearer {self.api.access_token}"})
            data = await resp.json()
            if resp.status != 200:
                raise TransientError("capabilities", data.get("errcode"))
            self._room_version = str(data["capabilities"]["m.room_versions"]["default"])
        return self._room_version

    async def find_room(self, state_type: str, marker: dict[str, str]) -> str | None:
        """After an interrupted createRoom, find the room it may have made by its marker.

        Asks the homeserver for the joined rooms: since restarts sync incrementally, nio's
        `rooms` holds only the rooms seen since the start."""
        resp = _check(await self.api.joined_rooms(), "joined_rooms")
        for room_id in reversed(list(resp.rooms)):
            resp = await self.api.room_get_state_event(room_id, state_type, "")
            if not isinstance(resp, ErrorResponse) and getattr(resp, "content", None) == marker:
                return str(room_id)
        return None

    async def invite(self, room_id: str, user_id: str) -> None:
        resp = await self.api.room_invite(room_id, user_id)
        if not (isinstance(resp, ErrorResponse) and "already in the room" in (resp.message or "")):
            _check(resp, "invite")
        self._note_invited(room_id, [user_id])

    def _note_invited(self, room_id: str, user_ids: list[str]) -> None:
        """History is visible from invitation: the invitee's devices must get the next room key,
        even before our own sync has shown the invite."""
        room = self.api.rooms.get(room_id)
        if room is None or not user_ids:
            return
        for user_id in user_ids:
            room.add_member(user_id, None, None, invited=True)
        if self.api.olm is not None:
            self.api.olm.update_tracked_users(room)
            self.api.invalidate_outbound_session(room_id)

    async def _load_invited(self, room_id: str) -> None:
        path = f"/_matrix/client/v3/rooms/{room_id}/members?membership=invite"
        resp = await self.api.send("GET", path, headers={"Authorization": f"Bearer {self.api.access_token}"})
        if resp.status != 200:
            raise TransientError("members", None)
        chunk = (await resp.json()).get("chunk", [])
        self._note_invited(room_id, [e["state_key"] for e in chunk if e.get("state_key")])

    async def load_room(self, room_id: str) -> None:
        """Read a room's whole state (GET /rooms/{id}/state: encryption, every member, invited
        ones included) into nio, the first time a send needs a room that the incremental sync
        since the start has not shown in full. Raises TransientError if the homeserver fails."""
        events = await self.room_state(room_id)
        api = self.api
        room = api.rooms.get(room_id)
        if room is None:
            room = api.rooms[room_id] = MatrixRoom(room_id, self.user_id, room_id in api.encrypted_rooms)
        for raw in events:
            event = Event.parse_event(raw)
            if isinstance(event, RoomMemberEvent):
                room.handle_membership(event)
            elif isinstance(event, Event):
                room.handle_event(event)
        room.members_synced = True
        if room.encrypted:
            api.encrypted_rooms.add(room_id)
        if api.olm is not None:
            # Members and invitees nio has not met yet (the room came to us through this read,
            # not a sync) must have their devices queried before the next room key is shared:
            # otherwise the key goes to none of their devices, silently.
            api.olm.update_tracked_users(room)
            api.invalidate_outbound_session(room_id)  # the next key is made for them too

    async def kick(self, room_id: str, user_id: str, reason: str) -> None:
        resp = await self.api.room_kick(room_id, user_id, reason)
        if isinstance(resp, ErrorResponse) and resp.status_code == "M_FORBIDDEN" \
                and "not in the room" in (resp.message or "").lower():
            return
        _check(resp, "kick")
        # Whoever leaves must not get the next room key, even before our sync shows the kick.
        room = self.api.rooms.get(room_id)
        if room is not None:
            room.remove_member(user_id)
            if self.api.olm is not None:
                self.api.invalidate_outbound_session(room_id)

    async def send(self, room_id: str, content: dict[str, Any], txn_id: str) -> str:
        """Send an encrypted event; the transaction id makes a retried send a no-op on Synapse."""
        room = self.api.rooms.get(room_id)
        if room is None or not room.encrypted:
            # Not seen since the start (incremental sync), or seen only through a few events. A
            # room the bot is no longer in (deleted by an administrator, the bot removed) answers
            # 403/404 here: a permanent failure, never retried for ever.
            await self.load_room(room_id)
            room = self.api.rooms.get(room_id)
        if room is None or not room.encrypted:
            # Never send in clear: wait until the room's state shows its encryption.
            raise RoomNotSynced(f"room {room_id} not encrypted (yet)")
        if not room.members_synced:
            members = await self.api.joined_members(room_id)
            if isinstance(members, JoinedMembersError):
                _check(members, "joined_members")
            await self._load_invited(room_id)
        if self.api.should_query_keys:
            await self.api.keys_query()
        if self.trust is not None:
            await self.trust.apply(self.api, room_id)  # blacklists devices the policy excludes
        # Sends to several rooms run at once (the outbox's lanes); room key shares are made one at
        # a time so two rooms never claim one-time keys for the same devices together.
        olm = self.api.olm
        sharing = olm is not None and olm.should_share_group_session(room_id)
        try:
            async with self._share_lock if sharing else contextlib.nullcontext():
                resp = await self.api.room_send(room_id, "m.room.message", content, tx_id=txn_id,
                                                ignore_unverified_devices=True)
        except Exception as exc:
            # nio marks the room "sharing a group session" before keys/claim and clears the mark
            # only after it: a failed claim (429 — which nio cannot even parse —, connection lost)
            # leaves it set, and every later send to the room would wait for it for ever.
            stale = self.api.sharing_session.pop(room_id, None)
            if stale is None:
                raise
            stale.set()
            raise TransientError(f"send: sharing the room key failed ({type(exc).__name__})", None) from exc
        _check(resp, "send")
        assert isinstance(resp, RoomSendResponse)
        return str(resp.event_id)

    async def redact(self, room_id: str, event_id: str, reason: str, txn_id: str) -> None:
        """Redact one of our events; the transaction id makes a retried redaction a no-op."""
        _check(await self.api.room_redact(room_id, event_id, reason, tx_id=txn_id), "redact")

    async def get_state(self, room_id: str, event_type: str, state_key: str = "") -> dict[str, Any]:
        resp = _check(await self.api.room_get_state_event(room_id, event_type, state_key), "get_state")
        return dict(resp.content)

    async def put_state(self, room_id: str, event_type: str, content: dict[str, Any], state_key: str = "") -> None:
        _check(await self.api.room_put_state(room_id, event_type, content, state_key), "put_state")

    async def upload_encrypted(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """Encrypt an attachment and upload the ciphertext; returns (mxc URI, decryption keys).
        No file name goes to the server: it is readable there."""
        ciphertext, keys = encrypt_attachment(data)
        resp, _ = await self.api.upload(lambda _limited, _timeouts: ciphertext,
                                        content_type="application/octet-stream", filesize=len(ciphertext))
        _check(resp, "upload")
        assert isinstance(resp, UploadResponse)
        return str(resp.content_uri), keys

    async def join(self, room_id: str) -> None:
        _check(await self.api.join(room_id), "join")

    async def room_state(self, room_id: str) -> list[dict[str, Any]]:
        """Every state event of a room the bot is in, as the homeserver serves them."""
        resp = await self.api.room_get_state(room_id)
        _check(resp, "room_state")
        assert isinstance(resp, RoomGetStateResponse)
        return [dict(e) for e in resp.events]

    async def leave(self, room_id: str) -> None:
        """Leave (and forget) a room; leaving a room already left is not an error."""
        resp = await self.api.room_leave(room_id)
        if isinstance(resp, ErrorResponse) and resp.status_code != "M_FORBIDDEN":
            _check(resp, "leave")
        await self.api.room_forget(room_id)

    async def display_names(self, room_id: str, user_ids: list[str]) -> dict[str, str]:
        """The names people go by in this room (from sync), else their profile's; an id whose
        name cannot be had is left out, and the notice shows the id itself."""
        room = self.api.rooms.get(room_id)
        names: dict[str, str] = {}
        for user_id in dict.fromkeys(user_ids):
            member = room.users.get(user_id) if room is not None else None
            name = member.display_name if member is not None else None
            if not name:
                name = self._profile_names.get(user_id)
            if name is None:
                try:  # the whole profile: its schema, unlike the display name's, allows no name
                    resp = await self.api.get_profile(user_id)
                except (ClientConnectionError, TimeoutError):
                    continue  # a notice never waits for a name
                name = "" if isinstance(resp, ErrorResponse) else (getattr(resp, "displayname", None) or "")
                if not (isinstance(resp, ErrorResponse) and transient_answer(http_status_of(resp), resp.status_code)):
                    self._profile_names[user_id] = name  # (a 429 or 5xx says nothing of the name)
            shown = shown_name(user_id, name)
            if shown is not None:
                names[user_id] = shown
        return names

    async def user_exists(self, user_id: str) -> bool:
        resp = await self.api.get_profile(user_id)
        if isinstance(resp, ErrorResponse):
            # Synapse answers M_NOT_FOUND, or M_UNKNOWN "No row found (profiles)" on some versions.
            if resp.status_code == "M_NOT_FOUND" or "no row found" in (resp.message or "").lower():
                return False
            _check(resp, "profile")
        return True
