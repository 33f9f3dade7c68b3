// A Node.js agent metered by meterline through OpenTelemetry alone.
//
// One agent run recorded with the GenAI semantic conventions (an invoke_agent span, a chat
// span, an execute_tool span), exported with the official OTLP/HTTP protobuf exporter to the
// gateway's /v1/traces. The gateway's key decides the project; the agent holds no Kafka
// credentials and no meterline code.
//
// Where to send (either):
//   OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:8322
//   OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20mlk_..."   (the exporter reads both)
// or
//   METERLINE_ENDPOINT=http://127.0.0.1:8322 METERLINE_API_KEY=mlk_...
//
// Contract: prints {"trace_id": "<32 hex>"} on stdout and exits 0 only after provider.shutdown()
// flushed every span and the gateway answered success; exits 1 (reason on stderr) if an
// export failed (401 wrong key, 400, unreachable gateway after the exporter's retries).

import { SpanKind, SpanStatusCode, diag, DiagConsoleLogger, DiagLogLevel } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.WARN);

function exporterOptions() {
  const options = { compression: 'gzip' };
  const endpoint = process.env.METERLINE_ENDPOINT;
  const key = process.env.METERLINE_API_KEY;
  if (endpoint) options.url = `${endpoint.replace(/\/+$/, '')}/v1/traces`;
  if (key) options.headers = { Authorization: `Bearer ${key}` };
  return options; // without them the exporter reads OTEL_EXPORTER_OTLP_* itself
}

const exporter = new OTLPTraceExporter(exporterOptions());

const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ 'service.name': 'support-bot-node' }),
  spanProcessors: [new BatchSpanProcessor(exporter)],
});
provider.register(); // AsyncLocalStorage context: children of the active span get its trace
const tracer = provider.getTracer('meterline-node-example', '1.0.0');

// Stand-ins for a model client and a tool: canned answers, no network.
async function callModel(model) {
  return { model: `${model}-2024-08-06`, usage: { input_tokens: 1200, output_tokens: 80, cached: 300 } };
}
async function lookupOrder(orderId) {
  return { orderId, status: 'shipped' };
}

async function chat(model) {
  return tracer.startActiveSpan(`chat ${model}`, {
    kind: SpanKind.CLIENT,
    attributes: {
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': model,
    },
  }, async (span) => {
    try {
      const answer = await callModel(model);
      span.setAttributes({
        'gen_ai.response.model': answer.model,
        'gen_ai.usage.input_tokens': answer.usage.input_tokens,
        'gen_ai.usage.output_tokens': answer.usage.output_tokens,
        'gen_ai.usage.cache_read.input_tokens': answer.usage.cached,
      });
      return answer;
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: String(err) });
      span.setAttribute('error.type', err?.name ?? 'Error');
      throw err;
    } finally {
      span.end();
    }
  });
}

async function tool(name, run) {
  return tracer.startActiveSpan(`execute_tool ${name}`, {
    attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': name },
  }, async (span) => {
    try {
      return await run();
    } finally {
      span.end();
    }
  });
}

const traceId = await tracer.startActiveSpan('invoke_agent support', {
  attributes: {
    'gen_ai.operation.name': 'invoke_agent',
    'gen_ai.agent.name': 'support',
    'gen_ai.agent.id': 'support-node-1',
    'gen_ai.conversation.id': 'conv-node-1',
    'user.id': 'u-node',
  },
}, async (agent) => {
  try {
    await chat('gpt-4o');
    await tool('lookup_order', () => lookupOrder('A-1001'));
    return agent.spanContext().traceId;
  } finally {
    agent.end();
  }
});

try {
  await provider.shutdown(); // flushes the batch: resolves once the gateway answered success
} catch (err) {
  console.error(`meterline example: export failed: ${err?.message ?? err}`);
  process.exit(1);
}
console.log(JSON.stringify({ trace_id: traceId }));
