// A web page built on OpenAI's JavaScript Agents SDK the way its quickstart shows it: a RealtimeAgent with a
// function tool made with tool(), a RealtimeSession over the default OpenAIRealtimeWebRTC transport, connected with
// an ephemeral key its backend minted. Only `baseUrl` points elsewhere: at `voiceclient serve`, on another origin.
// tests/test_agents_js.py bundles this file with esbuild into a temporary folder; the page reports to /result.
import { OpenAIRealtimeWebRTC, RealtimeAgent, RealtimeSession, tool } from "@openai/agents-realtime";
import { z } from "zod";
// The SDK's own schemas for server events: it drops an event that fails them without a word, so the page checks
// every message of the data channel against them itself.
import { realtimeServerEventSchema } from "../node_modules/@openai/agents-realtime/dist/openaiRealtimeEvents.mjs";

const params = new URLSearchParams(location.search);
const report = { steps: [], events: [], rejected: [], toolCalls: [], errors: [], heard: [] };
const send = (ok) => fetch("/result", { method: "POST", body: JSON.stringify({ ok, ...report }) });
const known = new Set(realtimeServerEventSchema.options.map((o) => o.shape.type.value));

// Every raw server event, as the data channel delivers it (the SDK creates the channel inside connect()).
const createDataChannel = RTCPeerConnection.prototype.createDataChannel;
RTCPeerConnection.prototype.createDataChannel = function (...args) {
  const channel = createDataChannel.apply(this, args);
  channel.addEventListener("message", (message) => {
    const raw = JSON.parse(message.data);
    report.events.push(raw.type);
    if (known.has(raw.type)) {
      const parsed = realtimeServerEventSchema.safeParse(raw);
      if (!parsed.success) report.rejected.push({ type: raw.type, issues: parsed.error.issues.slice(0, 3) });
    }
  });
  return channel;
};

function waitFor(session, predicate, what, ms = 15000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    const listener = (event) => {
      if (predicate(event)) {
        clearTimeout(timer);
        session.off("transport_event", listener);
        resolve(event);
      }
    };
    session.on("transport_event", listener);
  });
}

// Calls `each(samples, sampleRate)` with the latest `size` samples of `stream` every `ms`; returns a stop function.
function analyse(stream, size, ms, each) {
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = size;
  ctx.createMediaStreamSource(stream).connect(analyser);
  const buf = new Float32Array(size);
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(buf);
    each(buf, ctx.sampleRate);
  }, ms);
  return () => {
    clearInterval(timer);
    ctx.close();
  };
}

// The loudness of what the page hears, by dominant frequency (zero crossings) and level, every 20 ms.
function listen(stream) {
  analyse(stream, 2048, 20, (buf, rate) => {
    let peak = 0, crossings = 0;
    for (let i = 0; i < buf.length; i++) {
      peak = Math.max(peak, Math.abs(buf[i]));
      if (i && (buf[i - 1] < 0) !== (buf[i] < 0)) crossings++;
    }
    if (peak > 0.05) report.heard.push({ t: performance.now(), peak, hz: (crossings / 2) * rate / buf.length });
  });
}

// Resolves when the fake microphone's tone begins. Its file loops (0.5 s of silence, 1 s of tone, 0.5 s of
// silence) from when the page opened it, so unmuting at any moment could send only a tone's tail, which the
// server's VAD takes for a whole (40 ms) turn.
function toneStarts(stream) {
  let quiet = false;
  return new Promise((resolve) => {
    const stop = analyse(stream, 256, 5, (buf) => {
      const peak = buf.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      if (peak < 0.01) quiet = true;
      else if (quiet && peak > 0.05) {
        stop();
        resolve();
      }
    });
  });
}

(async () => {
  try {
    const getWeather = tool({
      name: "get_weather",
      description: "The weather in a city.",
      parameters: z.object({ city: z.string() }),
      execute: async ({ city }) => {
        report.toolCalls.push(city);
        return { city, forecast: "sunny", temperature: 22 };
      },
    });
    const agent = new RealtimeAgent({ name: "Assistant", instructions: "Answer briefly.", tools: [getWeather] });
    const audioElement = document.createElement("audio");
    audioElement.autoplay = true;
    const mic = await navigator.mediaDevices.getUserMedia({ audio: true }); // (the SDK's own would be the same)
    const probe = mic.clone(); // heard while the session's track is muted (mute() disables that track)
    const transport = new OpenAIRealtimeWebRTC({
      baseUrl: `${params.get("base")}/realtime/calls`, audioElement, mediaStream: mic,
    });
    const session = new RealtimeSession(agent, { transport });
    session.on("error", (e) => report.errors.push(String(e.error?.message ?? e.error ?? e)));
    await session.connect({ apiKey: params.get("key") });
    report.steps.push("connected");
    report.callId = transport.callId;
    listen(audioElement.srcObject);
    session.mute(true); // the fake microphone waits for its turn

    const done = (e) => e.type === "response.done";
    session.sendMessage("Hello there");
    report.firstReply = (await waitFor(session, done, "the typed turn's response.done")).response.output
      .map((o) => o.content?.map((c) => c.transcript).join(" ")).join(" ");
    report.steps.push("typed turn");

    session.sendMessage("What is the weather in Paris?");
    const answer = await waitFor(session, (e) => done(e) && e.response.output.some((o) => o.type === "message"),
      "the tool's answer");
    // Its audio may queue behind the first answer's: wait for this response's own end of playout.
    await waitFor(session, (e) => e.type === "output_audio_buffer.stopped" && e.response_id === answer.response.id,
      "the tool answer's audio", 10000);
    report.steps.push("tool turn");

    const started = waitFor(session, (e) => e.type === "output_audio_buffer.started", "the spoken turn's answer");
    await toneStarts(probe);
    session.mute(false); // the fake microphone: a 440 Hz tone of 1 s, then silence
    await waitFor(session, (e) => e.type === "input_audio_buffer.committed", "the spoken turn");
    session.mute(true);
    await started;
    const beforeInterrupt = report.heard.length;
    await new Promise((r) => setTimeout(r, 800)); // hear some of the long answer
    report.heardBeforeInterrupt = report.heard.length - beforeInterrupt;
    const cleared = waitFor(session, (e) => e.type === "output_audio_buffer.cleared", "the cleared buffer");
    session.interrupt();
    await cleared;
    report.steps.push("interrupted");
    const cut = performance.now();
    await new Promise((r) => setTimeout(r, 1000));
    report.heardAfterInterrupt = report.heard.filter((h) => h.t > cut + 300).length;
    report.history = session.history.map((item) => ({
      type: item.type, role: item.role, status: item.status, name: item.name,
      text: (item.content ?? []).map((c) => c.transcript ?? c.text ?? "").join(" "),
    }));
    session.close();
    report.steps.push("closed");
    await send(true);
  } catch (err) {
    report.errors.push(String(err && err.stack ? err.stack : err));
    await send(false);
  }
})();
