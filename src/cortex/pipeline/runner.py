"""The chat pipeline: eight services in order over one request context, and the conversation record.

The customer's message is stored before any model call; a request that fails leaves it stored and
marked failed with the request id. A semantic cache hit answers right after 05 and skips 06-08.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from sqlalchemy import text

from cortex.conversations import store
from cortex.conversations.pending import pending_messages
from cortex.kit.errors import CortexError, InvalidInput
from cortex.kit.runtime import Runtime
from cortex.llm.offline import OfflineResponder
from cortex.pipeline import (
    agent_compiler,
    cache_check,
    config_loader,
    context_engine,
    memory_recall,
    model_router,
    post_actions,
    token_optimizer,
)
from cortex.pipeline.background import BackgroundTasks
from cortex.pipeline.context import RequestContext, TurnOptions
from cortex.pipeline.schemas import ChatRequest, ChatResponse, Citation, ContextTokens, StepTimings, Tokens
from cortex.tools.executor import ToolExecutor

logger = logging.getLogger(__name__)

CACHE_MODEL_NAME = "cache"


class ChatPipeline:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.tools = ToolExecutor(runtime)
        self.background = BackgroundTasks()
        self.responder = OfflineResponder(runtime.embedder)

    async def aclose(self) -> None:
        await self.background.drain()
        await self.tools.aclose()

    async def run(self, request: ChatRequest, request_id: str, options: TurnOptions | None = None) -> ChatResponse:
        telemetry = self.runtime.telemetry
        ctx = RequestContext(request=request, request_id=request_id, tracer=telemetry.tracer,
                             options=options or TurnOptions())
        with telemetry.chat(ctx):  # the pipeline's span; its metrics are read from ctx at the end
            await config_loader.load(ctx, self.runtime)  # an unknown agent is a 404 before anything is stored
            turn = await self._open_conversation(ctx)
            try:
                return await self._services(ctx, turn)
            except (Exception, asyncio.CancelledError) as exc:
                # Shielded: a client that hung up must still leave its message marked failed.
                await asyncio.shield(self._mark_failed(ctx, turn, exc))
                raise

    async def _open_conversation(self, ctx: RequestContext) -> store.CustomerTurn:
        """Reads only (owner, profile, history; one statement): the turn is written once the cache has answered.

        A cache hit then stores conversation, question and reply in one transaction; otherwise the
        question is stored before the model is called. The check here refuses another customer's
        conversation early; `store.store_turn` decides for good, as first messages may race.
        """
        request, agent = ctx.request, ctx.config
        reads = await store.read_turn(self.runtime.database, company_id=ctx.company_id,
                                      conversation_id=request.conversation_id, customer_id=request.customer_id,
                                      history_turns=agent.settings.history_turns)
        existed = reads.owner is not None
        ctx.profile = memory_recall.profile_of(request.customer_id, reads.customer)
        ctx.history = reads.history
        supplied = ctx.options.history
        if not existed and supplied is not None:  # as many turns as stored history would give
            ctx.history = supplied[max(0, len(supplied) - 2 * agent.settings.history_turns):]
        ctx.customer_message_id = uuid.uuid4()
        turn = store.CustomerTurn(
            message_id=ctx.customer_message_id, company_id=ctx.company_id, conversation_id=request.conversation_id,
            agent_id=agent.id, customer_id=request.customer_id, content=request.message, channel=request.channel,
            request_id=ctx.request_id, metadata=request.metadata)
        return turn

    async def _mark_failed(self, ctx: RequestContext, turn: store.CustomerTurn, exc: BaseException) -> None:
        detail = exc.detail if isinstance(exc, CortexError) else type(exc).__name__
        error = f"{detail} (request {ctx.request_id})"
        try:
            async with self.runtime.database.session() as session:
                if ctx.customer_stored:
                    await store.mark_failed(session, company_id=ctx.company_id, message_id=turn.message_id,
                                            error=error)
                else:  # failed before the question was stored: store it, failed
                    await store.store_turn(session, turn, status="failed", error=error[:2000])
        except InvalidInput:
            pass  # the conversation is another customer's: nothing of this one goes into it
        except Exception:
            if not ctx.customer_stored:  # nothing was stored, so nothing is left pending
                logger.warning("could not store failed message %s", turn.message_id, exc_info=True)
                return
            # The database is what failed: the mark is written once it answers again.
            logger.warning("could not mark message %s failed yet; will retry", turn.message_id, exc_info=True)
            pending_messages(self.runtime).remember(ctx.company_id, turn.message_id, error)

    async def _services(self, ctx: RequestContext, turn: store.CustomerTurn) -> ChatResponse:
        runtime, settings = self.runtime, self.runtime.settings
        model, window = token_optimizer.token_model(ctx.config, settings)
        await memory_recall.recall(ctx, runtime, window)
        await context_engine.retrieve(ctx, runtime)
        token_optimizer.optimize(ctx, model, window)
        await cache_check.check(ctx, runtime)
        if ctx.cache_hit is not None:
            ctx.reply, ctx.model_used = ctx.cache_hit.answer, CACHE_MODEL_NAME
            if ctx.options.events is not None:  # the answer is known: a stream need not wait for the write
                ctx.options.events.delta(ctx.reply)
            ctx.options.message_id = uuid.uuid4()
            async with runtime.database.session() as session:
                await store.store_turn(session, turn, status="ok", reply_id=ctx.options.message_id,
                                       reply=self._reply_record(ctx))
            ctx.customer_stored = True
            return self._response(ctx)
        async with runtime.database.session() as session:
            # Committed without waiting for the WAL flush: the reply's commit below waits for it and covers
            # this one too, so every answered turn is durable; a database crash in between fails the
            # request, which then has nothing to mark. The model call does not wait for a disk write.
            await session.execute(text("SET LOCAL synchronous_commit = off"))
            await store.store_turn(session, turn, status="pending")
        ctx.customer_stored = True
        model_router.route(ctx, settings)
        await agent_compiler.compile_and_answer(ctx, runtime, self.tools, self.responder)
        reply_id = ctx.options.message_id = uuid.uuid4()
        async with runtime.database.session() as session:
            await store.store_reply(session, turn, reply_id, self._reply_record(ctx))
            await post_actions.schedule(session, ctx, runtime, reply_id)  # committed with the reply
        return self._response(ctx)

    def _reply_record(self, ctx: RequestContext) -> store.ReplyRecord:
        hit = ctx.cache_hit
        return store.ReplyRecord(
            content=ctx.reply, model_used=ctx.model_used, tier=ctx.tier, tier_reason=ctx.tier_reason,
            tokens_input=ctx.tokens_input, tokens_output=ctx.tokens_output, cost_usd=ctx.cost_usd,
            latency_ms=ctx.elapsed_ms(), step_timings=ctx.step_timings(), context_tokens=self._context_tokens(ctx),
            actions_executed=ctx.actions_executed, tool_calls=[o.record() for o in ctx.tool_outcomes],
            tool_rounds=ctx.tool_rounds, cached=hit is not None, cache_similarity=hit.similarity if hit else None,
            cache_entry_id=hit.entry_id if hit else None, config_cache_hit=ctx.config_cache_hit,
            cache_checked=ctx.cache_checked,
            llm_latency_ms=round(ctx.llm_latency_ms, 3) if ctx.model_used not in ("offline", "cache") else None,
            metadata={"notes": ctx.notes, "dropped": ctx.budget.dropped, "truncated": ctx.budget.truncated,
                      # What the portal's trace shows: the citations, and the facts by id only (their text
                      # stays in memory_facts, so forgetting a customer leaves none of it here).
                      "citations": [c.model_dump(mode="json") for c in self._citations(ctx)],
                      "facts_used": [str(f.id) for f in ctx.kept_facts]},
        )

    @staticmethod
    def _context_tokens(ctx: RequestContext) -> dict[str, float]:
        budget = ctx.budget
        return {"before_compression": budget.before, "after_compression": budget.after,
                "savings_pct": budget.savings_pct}

    def _response(self, ctx: RequestContext) -> ChatResponse:
        return ChatResponse(
            reply=ctx.reply, model_used=ctx.model_used, cached=ctx.cache_hit is not None,
            actions_executed=ctx.actions_executed, latency_ms=ctx.elapsed_ms(),
            tokens=Tokens(input=ctx.tokens_input, output=ctx.tokens_output, cost_usd=round(ctx.cost_usd, 8)),
            context_tokens=ContextTokens.model_validate(self._context_tokens(ctx)),
            step_timings=StepTimings(**ctx.step_timings()), citations=self._citations(ctx),
        )

    @staticmethod
    def _citations(ctx: RequestContext) -> list[Citation]:
        """What the prompt carried: a cache hit answers without a prompt, so it cites nothing."""
        if ctx.cache_hit is not None:
            return []
        return [Citation(document_id=c.document_id, document_name=c.document_name or "", source_id=c.source_id,
                         chunk_id=c.chunk_id) for c in ctx.kept_chunks if c.document_id is not None]
