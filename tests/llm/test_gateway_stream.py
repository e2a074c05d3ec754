"""`LLMGateway.stream`: real LiteLLM streams from the scripted server; retries only before the first token."""

from __future__ import annotations

import pytest

from cortex.agents.schemas import ModelPrice
from cortex.kit.errors import ServiceUnavailable
from cortex.kit.runtime import Runtime
from tests.conftest import SCRIPTED_MODEL
from tests.scripted_llm import Reply, ScriptedLLM, ToolCall

USER = [{"role": "user", "content": "Where is my parcel?"}]


async def test_text_arrives_in_pieces_and_the_completion_matches_a_plain_call(
        runtime: Runtime, llm: ScriptedLLM) -> None:
    prices = {SCRIPTED_MODEL: ModelPrice(input_per_million=2.0, output_per_million=10.0)}
    llm.queue(Reply(text="It is on its way to you.", prompt_tokens=40, completion_tokens=7),
              Reply(text="It is on its way to you.", prompt_tokens=40, completion_tokens=7))
    pieces: list[str] = []
    streamed = await runtime.llm.stream(models=[SCRIPTED_MODEL], messages=USER, on_text=pieces.append,
                                        prices=prices, temperature=0.2, max_tokens=50)
    plain = await runtime.llm.complete(models=[SCRIPTED_MODEL], messages=USER, prices=prices)
    assert len(pieces) == 7 and "".join(pieces) == "It is on its way to you."
    assert (streamed.text, streamed.tokens_input, streamed.tokens_output, streamed.cost_usd) == (
        plain.text, plain.tokens_input, plain.tokens_output, plain.cost_usd)
    sent = llm.requests[0]
    assert sent["stream"] is True and sent["temperature"] == 0.2 and sent["max_tokens"] == 50


async def test_tool_calls_are_assembled_from_their_pieces(runtime: Runtime, llm: ScriptedLLM) -> None:
    llm.queue(Reply(tool_calls=[ToolCall("lookup_order", '{"order_id": "ORD-1"}'), ToolCall("ping", "{}")]))
    tools = [{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}]
    pieces: list[str] = []
    result = await runtime.llm.stream(models=[SCRIPTED_MODEL], messages=USER, tools=tools, on_text=pieces.append)
    assert pieces == [] and result.text == ""
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("lookup_order", '{"order_id": "ORD-1"}'),
                                                                  ("ping", "{}")]
    assert result.message["tool_calls"][0]["id"] == result.tool_calls[0].id


async def test_a_failure_before_the_first_token_is_retried(runtime: Runtime, llm: ScriptedLLM) -> None:
    llm.queue(Reply(status=503), Reply(text="second try"))
    pieces: list[str] = []
    result = await runtime.llm.stream(models=[SCRIPTED_MODEL], messages=USER, on_text=pieces.append)
    assert result.text == "second try" and "".join(pieces) == "second try" and len(llm.requests) == 2


async def test_a_failure_after_the_first_token_is_not_retried(runtime: Runtime, llm: ScriptedLLM) -> None:
    llm.queue(Reply(text="one two three four", fail_after_tokens=2), Reply(text="must not be asked"))
    pieces: list[str] = []
    with pytest.raises(ServiceUnavailable):
        await runtime.llm.stream(models=[SCRIPTED_MODEL, SCRIPTED_MODEL], messages=USER, on_text=pieces.append)
    assert "".join(pieces) == "one two " and len(llm.requests) == 1
