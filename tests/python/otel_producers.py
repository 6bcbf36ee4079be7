"""Real OpenTelemetry producers for tests/otlp.rs (versions pinned in tools/requirements.txt).

Parts:
  sdk        the official opentelemetry-sdk with the OTLP/HTTP (protobuf) exporters:
             an `invoke_agent` trace with chat and execute_tool spans and an evaluation
             result (log record), the spans exported in two requests out of order; then
             a second trace whose root span arrives in a later request.
  openllmetry  opentelemetry-instrumentation-anthropic wrapping the official anthropic
             SDK (against --model-url, a loopback stand-in of the Messages API), inside an
             invoke_agent span, one tool round trip; then an evaluation result.
  openinference  the same with openinference-instrumentation-anthropic.
  inspect    inspect-ai itself writes an .eval log (a tiny task, its mock model) to --out.

Prints one JSON line: what it sent (trace ids, conversation ids, ...).
"""

import argparse
import json
import sys


def providers(endpoint, token, service):
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, BatchSpanProcessor

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resource = Resource.create({"service.name": service})
    tp = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", headers=headers, compression=Compression.Gzip)
    tp.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=512, schedule_delay_millis=60_000))
    lp = LoggerProvider(resource=resource)
    lp.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{endpoint}/v1/logs", headers=headers))
    )
    return tp, lp


def evaluation(lp, span_ctx, name, score, label, explanation):
    """A gen_ai.evaluation.result event, as the GenAI conventions define it."""
    from opentelemetry._logs import LogRecord

    logger = lp.get_logger("evaluator")
    logger.emit(
        LogRecord(
            event_name="gen_ai.evaluation.result",
            trace_id=span_ctx.trace_id,
            span_id=span_ctx.span_id,
            trace_flags=span_ctx.trace_flags,
            attributes={
                "gen_ai.evaluation.name": name,
                "gen_ai.evaluation.score.value": score,
                "gen_ai.evaluation.score.label": label,
                "gen_ai.evaluation.explanation": explanation,
            },
        )
    )


def part_sdk(args):
    from opentelemetry.trace import Status, StatusCode, SpanKind

    tp, lp = providers(args.endpoint, args.token, "weather-service")
    tracer = tp.get_tracer("weather-agent", "1.0")
    user = {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris? Then book a table."}]}
    call = {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    call2 = {"type": "tool_call", "id": "call_2", "name": "book_table", "arguments": {"people": 2}}
    with tracer.start_as_current_span(
        "invoke_agent weather-bot",
        kind=SpanKind.INTERNAL,
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "weather-bot",
            "gen_ai.conversation.id": args.conversation,
            "gen_ai.request.model": "claude-test",
            "dreamlog.task.id": "weather-and-booking",
        },
    ) as root:
        with tracer.start_as_current_span(
            "chat claude-test",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "anthropic",
                "gen_ai.request.model": "claude-test",
                "gen_ai.response.model": "claude-test-1",
                "gen_ai.response.id": "msg_a",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 30,
                "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "You are a weather bot."}]),
                "gen_ai.input.messages": json.dumps([user]),
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": "Checking."}, call, call2], "finish_reason": "tool_call"}]
                ),
            },
        ):
            pass
        with tracer.start_as_current_span(
            "execute_tool get_weather",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "get_weather",
                "gen_ai.tool.call.id": "call_1",
                "gen_ai.tool.call.arguments": json.dumps({"city": "Paris"}),
                "gen_ai.tool.call.result": json.dumps({"temp_c": 21, "sky": "clear"}),
            },
        ):
            pass
        # Flushed now: this request holds the chat and the first tool; the rest (the
        # failing tool, the second chat and the root) comes in a later request.
        tp.force_flush()
        with tracer.start_as_current_span(
            "execute_tool book_table",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "book_table",
                "gen_ai.tool.call.id": "call_2",
                "gen_ai.tool.call.arguments": json.dumps({"people": 2}),
                "error.type": "TimeoutError",
            },
        ) as failing:
            failing.set_status(Status(StatusCode.ERROR, "the booking service timed out"))
        with tracer.start_as_current_span(
            "chat claude-test",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "anthropic",
                "gen_ai.request.model": "claude-test",
                "gen_ai.response.id": "msg_b",
                "gen_ai.usage.input_tokens": 200,
                "gen_ai.usage.output_tokens": 12,
                "gen_ai.input.messages": json.dumps(
                    [
                        user,
                        {"role": "assistant", "parts": [{"type": "text", "content": "Checking."}, call, call2]},
                        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": {"temp_c": 21, "sky": "clear"}}]},
                        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_2", "response": "TimeoutError"}]},
                    ]
                ),
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": "21°C and clear; booking failed."}], "finish_reason": "stop"}]
                ),
            },
        ):
            pass
        root_ctx = root.get_span_context()
    tp.force_flush()
    evaluation(lp, root_ctx, "task_success", 0.0, "fail", "the table was not booked")
    evaluation(lp, root_ctx, "helpfulness", 0.8, "good", "clear weather answer")

    # A trace whose root arrives after its child, in another request: one session.
    tracer2 = tp.get_tracer("late-agent")
    root2 = tracer2.start_span("invoke_agent late-bot", attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "late-bot"})
    from opentelemetry import trace as t

    with t.use_span(root2, end_on_exit=False):
        with tracer2.start_as_current_span(
            "execute_tool lookup",
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup", "gen_ai.tool.call.id": "c9",
                        "gen_ai.tool.call.arguments": "{\"q\": \"x\"}", "gen_ai.tool.call.result": "found"},
        ):
            pass
    tp.force_flush()
    root2.end()
    tp.force_flush()
    tp.shutdown()
    lp.shutdown()
    print(json.dumps({
        "trace": format(root_ctx.trace_id, "032x"),
        "late_trace": format(root2.get_span_context().trace_id, "032x"),
    }))


def instrumented(args, which):
    import anthropic
    from opentelemetry.trace import SpanKind

    tp, lp = providers(args.endpoint, args.token, f"{which}-service")
    if which == "openllmetry":
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
    else:
        from openinference.instrumentation.anthropic import AnthropicInstrumentor
    AnthropicInstrumentor().instrument(tracer_provider=tp)
    client = anthropic.Anthropic(api_key="sk-test", base_url=args.model_url)
    tools = [{"name": "get_weather", "description": "weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    tracer = tp.get_tracer("app")
    with tracer.start_as_current_span(
        f"invoke_agent {which}-bot",
        kind=SpanKind.INTERNAL,
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": f"{which}-bot",
                    "gen_ai.conversation.id": args.conversation},
    ) as root:
        msgs = [{"role": "user", "content": "Weather in Paris?"}]
        r = client.messages.create(model="claude-test", max_tokens=100, tools=tools, messages=msgs)
        use = [b for b in r.content if b.type == "tool_use"][0]
        msgs += [
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in r.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21C"}]},
        ]
        r = client.messages.create(model="claude-test", max_tokens=100, tools=tools, messages=msgs)
        ctx = root.get_span_context()
    tp.force_flush()
    evaluation(lp, ctx, "answered", 1.0, "pass", "said the weather")
    tp.shutdown()
    lp.shutdown()
    print(json.dumps({"trace": format(ctx.trace_id, "032x"), "final": r.content[0].text}))


def part_inspect(args):
    from inspect_ai import Task, eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ModelOutput, ModelUsage, get_model
    from inspect_ai.scorer import includes
    from inspect_ai.solver import generate, use_tools
    from inspect_ai.tool import tool

    @tool
    def add():
        async def execute(x: int, y: int):
            """Add two numbers.

            Args:
                x: First number.
                y: Second number.
            """
            return x + y

        return execute

    task = Task(
        dataset=[Sample(id="one", input="What is 1 + 1?", target="2"), Sample(id="two", input="What is 2 + 3?", target="5")],
        solver=[use_tools(add()), generate()],
        scorer=includes(),
        name="addition",
    )
    outputs = [
        ModelOutput.for_tool_call(model="mockllm/model", tool_name="add", tool_arguments={"x": 1, "y": 1}),
        ModelOutput.from_content(model="mockllm/model", content="The answer is 2"),
        ModelOutput.for_tool_call(model="mockllm/model", tool_name="add", tool_arguments={"x": 2, "y": 3}),
        ModelOutput.from_content(model="mockllm/model", content="The answer is 6"),
    ]
    for o in outputs:
        # Usage given, so the mock model does not fetch a tokenizer from the internet.
        o.usage = ModelUsage(input_tokens=10, output_tokens=5, total_tokens=15)
    logs = inspect_eval(task, model=get_model("mockllm/model", custom_outputs=outputs), log_dir=args.out,
                        display="none", max_samples=1)
    log = logs[0]
    print(json.dumps({"file": log.location, "status": log.status, "eval_id": log.eval.eval_id}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--part", required=True)
    p.add_argument("--endpoint")
    p.add_argument("--token")
    p.add_argument("--model-url")
    p.add_argument("--conversation", default="conv-1")
    p.add_argument("--out")
    args = p.parse_args()
    if args.part == "sdk":
        part_sdk(args)
    elif args.part in ("openllmetry", "openinference"):
        instrumented(args, args.part)
    elif args.part == "inspect":
        part_inspect(args)
    else:
        sys.exit(f"unknown part {args.part}")


if __name__ == "__main__":
    main()
