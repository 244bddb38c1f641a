"""The conversation of one server session: its items in order, their audio, and what has been answered.

Pure state with the protocol's rules, no I/O: the session (a WebRTC call) turns client events into calls here
and sends the events. Rules kept here:

- an item goes after `previous_item_id` (after the last item when none is given; first with "root"); an unknown
  previous id or a duplicate item id is refused;
- a response answers the items added since the previous response, except those a response (or the server)
  produced itself; inserting or deleting before that point keeps the mark on the same item;
- truncating an assistant message keeps the words whose audio had started by `audio_end_ms`, and refuses an end
  past the audio it has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voiceclient.audio.format import samples_to_ms
from voiceclient.protocol.errors import ProtocolError

Item = dict[str, Any]


def words(text: str) -> list[str]:
    """Each word with its trailing space: the deltas a transcript is sent in."""
    parts = text.split(" ")
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts) if p or i == len(parts) - 1]


def word_offsets(text: str) -> list[tuple[int, str]]:
    """(character offset, word with its trailing space) for each word of `text`."""
    out, offset = [], 0
    for word in words(text):
        out.append((offset, word))
        offset += len(word)
    return out


@dataclass
class ItemAudio:
    pcm: np.ndarray
    rate: int

    @property
    def ms(self) -> int:
        return samples_to_ms(self.pcm.size, self.rate)


@dataclass
class Conversation:
    items: list[Item] = field(default_factory=list)
    audio: dict[str, ItemAudio] = field(default_factory=dict)  # item id -> its audio (user input, assistant)
    # assistant item id -> (ms into the item's audio where the word starts, the word), as the audio was queued
    word_starts: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    produced: set[str] = field(default_factory=set)  # ids of items a response or the server created
    answered_upto: int = 0  # items[:answered_upto] have been answered by a response

    # ------------------------------------------------------------------------------------------ reading
    @property
    def last_id(self) -> str | None:
        return self.items[-1]["id"] if self.items else None

    def index_of(self, item_id: str) -> int | None:
        return next((i for i, it in enumerate(self.items) if it["id"] == item_id), None)

    def get(self, item_id: str) -> Item | None:
        index = self.index_of(item_id)
        return None if index is None else self.items[index]

    def require(self, item_id: str, operation: str = "retrieve") -> Item:
        """The item, or the real service's error for an unknown id: `item_retrieve_invalid_item_id` ("Error
        retrieving item: the item with id 'X' does not exist."), likewise for delete and truncate (pipecat and
        LiveKit Agents branch on these codes; `param` is null, as the service sends it)."""
        item = self.get(item_id)
        if item is None:
            verb = {"retrieve": "retrieving", "delete": "deleting", "truncate": "truncating"}[operation]
            raise ProtocolError(
                f"Error {verb} item: the item with id '{item_id}' does not exist.", f"item_{operation}_invalid_item_id"
            )
        return item

    def user_audio(self) -> list[np.ndarray]:
        """What the server heard, one array (24 kHz mono) per committed user turn, in order."""
        return [self.audio[it["id"]].pcm for it in self.items if it.get("role") == "user" and it["id"] in self.audio]

    def user_words(self, before: str) -> list[str]:
        """What the user said in each user message before item `before`, in order: its typed text or the
        transcript of its audio (messages with neither, an untranscribed audio turn, are left out)."""
        out = []
        for it in self.items:
            if it["id"] == before:
                break
            if it.get("type") == "message" and it.get("role") == "user":
                parts = [
                    p.get("text") if p.get("type") == "input_text" else p.get("transcript")
                    for p in it.get("content") or []
                ]
                said = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
                if said:
                    out.append(said)
        return out

    def carried_turns(self, before: str) -> int:
        """User turns before item `before` answered in an earlier session: a user message followed, before the next
        user message, by an assistant message no response here produced (a conversation replayed into this one)."""
        count, open_turn = 0, False
        for it in self.items:
            if it["id"] == before:
                break
            if it.get("type") == "message" and it.get("role") == "user":
                open_turn = True
            elif open_turn and it.get("role") == "assistant" and it["id"] not in self.produced:
                count, open_turn = count + 1, False
        return count

    def function_name(self, call_id: str) -> str | None:
        return next(
            (it.get("name") for it in self.items if it.get("type") == "function_call" and it.get("call_id") == call_id),
            None,
        )

    # ------------------------------------------------------------------------------------------ changing
    def insert(self, item: Item, previous_item_id: str | None = None) -> str | None:
        """Add a client's (or the input buffer's) item; returns the id it now follows (None: first)."""
        if any(it["id"] == item["id"] for it in self.items):
            raise ProtocolError(
                f"Error adding item: an item with id '{item['id']}' already exists.", "item_create_duplicate_item_id"
            )
        index = None if previous_item_id in (None, "root") else self.index_of(previous_item_id)
        if previous_item_id not in (None, "root") and index is None:
            raise ProtocolError(
                f"Previous item with id '{previous_item_id}' not found.", "item_not_found", "previous_item_id"
            )
        if previous_item_id is None or previous_item_id == self.last_id or not self.items:
            previous = self.last_id
            self.items.append(item)
        elif index is None:  # "root": first of all
            previous = None
            self.items.insert(0, item)
            self.answered_upto += 1
        else:
            previous = previous_item_id
            self.items.insert(index + 1, item)
            if index < self.answered_upto:
                self.answered_upto += 1
        return previous

    def add_output(self, item: Item) -> str | None:
        """Append an item a response (or the server) produced; returns the id it follows."""
        previous = self.last_id
        self.items.append(item)
        self.produced.add(item["id"])
        return previous

    def delete(self, item_id: str) -> None:
        index = self.items.index(self.require(item_id, "delete"))
        self.items.pop(index)
        self.audio.pop(item_id, None)
        self.word_starts.pop(item_id, None)
        if index < self.answered_upto:
            self.answered_upto -= 1

    def take_unanswered(self) -> list[Item]:
        """The items a new response answers (added since the last one, not produced by one), marking them."""
        new = [it for it in self.items[self.answered_upto :] if it["id"] not in self.produced]
        self.answered_upto = len(self.items)
        return new

    def truncate(self, item_id: str, audio_end_ms: int, content_index: int = 0) -> None:
        """A client's `conversation.item.truncate`: checked, then applied. `content_index` must name the item's
        audio part ([SDK] ConversationItemTruncateEvent: "the index of the content part to truncate"): a text-only
        item has nothing to truncate (the real wording is not established: refused, the stricter answer)."""
        item = self.require(item_id, "truncate")
        if item.get("role") != "assistant":
            raise ProtocolError(f"Item with id '{item_id}' is not an assistant message.", "invalid_value", "item_id")
        parts = item.get("content") or []
        if not 0 <= content_index < len(parts) or parts[content_index].get("type") not in ("output_audio", "audio"):
            raise ProtocolError(
                f"Content part {content_index} of item '{item_id}' is not audio.", "invalid_value", "content_index"
            )
        audio = self.audio.get(item_id)
        length_ms = audio.ms if audio is not None else 0
        if audio_end_ms > length_ms:
            raise ProtocolError(
                f"Audio content of {length_ms}ms is already shorter than {audio_end_ms}ms.",
                "invalid_value",
                "audio_end_ms",
            )
        self.cut(item, audio_end_ms)

    def cut(self, item: Item, end_ms: int) -> None:
        """Keep the words whose audio had started by `end_ms` (by where the response engine placed each word), and
        the audio up to `end_ms`: what was cut is gone, so a later truncation cannot bring it back."""
        starts = [(ms, w) for ms, w in self.word_starts.get(item["id"], []) if ms < end_ms]
        if item["id"] in self.word_starts:
            self.word_starts[item["id"]] = starts
        audio = self.audio.get(item["id"])
        if audio is not None:
            self.audio[item["id"]] = ItemAudio(audio.pcm[: audio.rate * end_ms // 1000], audio.rate)
        for part in item.get("content") or []:
            if "transcript" in part:
                part["transcript"] = "".join(w for _, w in starts).rstrip()
