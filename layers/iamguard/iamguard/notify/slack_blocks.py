"""A `Message` as Slack Block Kit, built with `slack_sdk.models.blocks`.

The block classes carry Slack's limits (a header's 150 characters, a section's
3,000 and 10 fields, a context's 10 elements) and check them when serialized:
text is cut to fit them here, and a block that still broke one fails the send
as permanent before any request, as Slack's `invalid_blocks` answer would.
Imported on the first send, like `slack_transport`: slack_sdk is slow to import.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from iamguard.domain.messages import Message
from iamguard.notify.base import DeliveryError

# Slack's limits that slack_sdk's block classes do not declare (api.slack.com/reference/block-kit/blocks).
FIELD_TEXT_LIMIT = 2000  # one of a section's fields
MESSAGE_BLOCK_LIMIT = 50  # blocks in one message (slack_sdk declares only a view's 100)
CODE_ROOM = 200  # of a section's text, what a code block leaves to the title and the lines above it


def escape(text: str) -> str:
    """Slack mrkdwn control characters (& < >); `<user>` would otherwise be read as a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(text: str, limit: int = SectionBlock.text_max_length) -> MarkdownTextObject:
    return MarkdownTextObject(text=cut(text, limit))


def blocks(message: Message) -> list[Block]:
    """The message as Block Kit blocks: header, summary, fields, sections, then notes and footer."""
    out: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=cut(message.headline, HeaderBlock.text_max_length), emoji=True)),
        SectionBlock(text=_mrkdwn(f"*{escape(message.summary)}*")),
    ]
    cells = [
        _mrkdwn(f"*{escape(f.label)}*\n" + (f"`{escape(f.value)}`" if f.code else escape(f.value)), FIELD_TEXT_LIMIT)
        for f in message.fields
    ]
    per_block = SectionBlock.fields_max_length
    out += [SectionBlock(fields=cells[start : start + per_block]) for start in range(0, len(cells), per_block)]
    for section in message.sections:
        body = [
            f"{n}. {escape(line)}" if section.numbered else f"• {escape(line)}"
            for n, line in enumerate(section.lines, start=1)
        ]
        if section.code:
            body.append("```" + cut(escape(section.code), SectionBlock.text_max_length - CODE_ROOM) + "```")
        out.append(SectionBlock(text=_mrkdwn(f"*{escape(section.title)}*\n" + "\n".join(body))))
    context = [*(escape(note) for note in message.notes), *([escape(message.footer)] if message.footer else [])]
    if context:
        out.append(DividerBlock())
        out.append(ContextBlock(elements=[_mrkdwn(text) for text in context[: ContextBlock.elements_max_length]]))
    return out[:MESSAGE_BLOCK_LIMIT]


def payload(message: Message) -> dict[str, Any]:
    """What is posted: blocks, plus `text` for notifications and clients without Block Kit.

    Raises a permanent DeliveryError for blocks that break one of Slack's limits: resending cannot fix them.
    """
    try:
        rendered = [block.to_dict() for block in blocks(message)]
    except SlackObjectFormationError as exc:
        raise DeliveryError(f"the message breaks a Block Kit limit: {exc}", permanent=True) from None
    return {"text": cut(f"{message.headline} — {message.summary}", SectionBlock.text_max_length), "blocks": rendered}
