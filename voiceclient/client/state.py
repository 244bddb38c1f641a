"""The client's one view of where the conversation stands, derived from the events in both directions.

`TurnState` is the only place that keeps it: the call, the tool runner, `talk`, its view and the printer read it
instead of keeping copies. It sees every server event first (it subscribes before anyone else) and every client
event as it is sent, and knows:

- the `response.create`s we sent that the server has not answered yet (answered in order by `response.created`,
  or refused by an `error` naming the request's `event_id`), and the responses in progress;
- the responses whose audio is still playing (`output_audio_buffer.started` until `stopped`/`cleared`);
- whether the user is speaking (`speech_started` until `speech_stopped`/`cleared`);
- the function calls the model made that have no `function_call_output` yet;
- in a transcription session, the committed turns whose transcript has not come yet (`completed` or `failed`);
- when anything last happened.

It is also the one place that sends `response.create` on behalf of the client's own logic (`request_response`),
with the retry the protocol needs: a create refused with `conversation_already_has_active_response` is sent once
more after that response is done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from voiceclient.protocol import events as ev

log = logging.getLogger(__name__)
ACTIVE_RESPONSE = "conversation_already_has_active_response"
RETRY_WINDOW = 60.0  # seconds a create of ours stays retryable


class TurnState:
    def __init__(self, send: Callable[[ev.ClientEvent], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._send = send
        self._clock = clock
        self.requested: dict[str, float] = {}  # event_id of each unanswered response.create -> when it was sent
        self.active: set[str] = set()  # response ids in progress
        self.playing: set[str] = set()  # response ids whose audio is still playing out
        self.user_speaking = False
        self.tools_pending: set[str] = set()  # call_ids of function calls without an output yet
        # A transcription session with transcription on, as the server last said (the call sets it: `transcribing`)
        self.transcribes = False
        self.transcribing: set[str] = set()  # item ids of committed turns whose transcript is owed
        self.last_activity = clock()
        self._retryable: dict[str, float] = {}  # creates retried once after a busy refusal -> when sent
        self._retry_after_done = False

    # ------------------------------------------------------------------------------------------ reading
    @property
    def responding(self) -> bool:
        """A response was asked for or is in progress."""
        return bool(self.requested or self.active or self._retry_after_done)

    @property
    def audio_playing(self) -> bool:
        return bool(self.playing)

    @property
    def busy(self) -> bool:
        """Something is under way: the user speaking, a response owed or running, audio playing, a tool pending, a
        transcript owed."""
        return (
            self.user_speaking
            or self.responding
            or self.audio_playing
            or bool(self.tools_pending)
            or bool(self.transcribing)
        )

    def connection_changed(self) -> None:
        """The conversation moved to a new connection: what was under way on the old one is gone with it (the
        function calls still owed an output stay owed)."""
        self.requested.clear()
        self.active.clear()
        self.playing.clear()
        self.user_speaking = False
        self.transcribing.clear()
        self._retry_after_done = False
        self.last_activity = self._clock()

    # ------------------------------------------------------------------------------------------ writing
    def request_response(self, retry: bool = True) -> ev.ResponseCreate:
        """Send `response.create`; with `retry`, once more after the active response if the server is busy."""
        event = ev.ResponseCreate()
        if retry and event.event_id:
            now = self._clock()
            # A refusal comes right after the create; a create this old was answered (or refused) long ago.
            self._retryable = {k: at for k, at in self._retryable.items() if now - at < RETRY_WINDOW}
            self._retryable[event.event_id] = now
        self._send(event)
        return event

    def sent(self, event: ev.ClientEvent) -> None:
        """Every client event, as it goes out."""
        if isinstance(event, ev.ResponseCreate) and event.event_id:
            self.requested[event.event_id] = self._clock()
            self.last_activity = self._clock()
        elif isinstance(event, ev.ConversationItemCreate) and event.item.type == "function_call_output":
            self.tools_pending.discard(event.item.call_id or "")

    def received(self, event: ev.ReceivedServerEvent) -> None:
        """Every server event, first of all consumers."""
        self.last_activity = self._clock()
        if isinstance(event, ev.ResponseCreated):
            self.active.add(event.response.id or "")
            if self.requested:  # the server answers creates in the order they were sent
                # (a response the server started itself may take the place of ours here; if ours is then refused,
                # the error still finds it in `_retryable`)
                del self.requested[next(iter(self.requested))]
        elif isinstance(event, ev.ResponseDone):
            self.active.discard(event.response.id or "")
            if self._retry_after_done:
                self._retry_after_done = False
                self.request_response(retry=False)
        elif isinstance(event, ev.OutputAudioBufferStarted):
            self.playing.add(event.response_id)
        elif isinstance(event, (ev.OutputAudioBufferStopped, ev.OutputAudioBufferCleared)):
            self.playing.discard(event.response_id)
        elif isinstance(event, ev.SpeechStarted):
            self.user_speaking = True
        elif isinstance(event, (ev.SpeechStopped, ev.InputAudioBufferCleared)):
            self.user_speaking = False
        elif isinstance(event, ev.ResponseFunctionCallArgumentsDone):
            self.tools_pending.add(event.call_id)
        elif isinstance(event, ev.ConversationItemAdded) and event.item.type == "function_call_output":
            self.tools_pending.discard(event.item.call_id or "")  # answered, by us or by a sideband backend
        elif isinstance(event, ev.InputAudioBufferCommitted) and self.transcribes:
            self.transcribing.add(event.item_id)
        elif isinstance(event, ev.InputTranscriptionEnd):
            self.transcribing.discard(event.item_id)
        elif isinstance(event, ev.Error):
            self._on_error(event)

    def _on_error(self, event: ev.Error) -> None:
        request = event.error.event_id or ""
        self.requested.pop(request, None)
        if event.error.code == ACTIVE_RESPONSE and request in self._retryable:
            del self._retryable[request]
            if self.active:
                self._retry_after_done = True
            else:  # the response it collided with is already done: ask again now
                self.request_response(retry=False)
