// The voxmesh page: microphone (AudioWorklet) or a file, streamed as 24 kHz PCM16 over the realtime
// WebSocket (OpenAI's GA dialect); partials in place, finals with their spans and latency, processed text.
"use strict";
const RATE = 24000;
const $ = (id) => document.getElementById(id);
let socket = null, context = null, source = null, stopped = true, pending = [];
const rows = new Map();      // item_id -> its <li>
const endedAt = new Map();   // item_id -> when speech_stopped arrived (ms)
const partials = new Map();  // item_id -> the partial text so far

function row(item) {
  if (!rows.has(item)) {
    const li = document.createElement("li");
    li.innerHTML = '<span class="span"></span><span class="text"></span><span class="latency"></span><div class="processed" hidden></div>';
    $("utterances").appendChild(li);
    rows.set(item, li);
  }
  return rows.get(item);
}

function showPartial() {
  $("partial").textContent = [...partials.values()].join(" ");
}

function onEvent(event) {
  const item = event.item_id;
  switch (event.type) {
    case "input_audio_buffer.speech_stopped":
      endedAt.set(item, performance.now());
      break;
    case "conversation.item.input_audio_transcription.delta":
      partials.set(item, (partials.get(item) || "") + event.delta);
      showPartial();
      break;
    case "conversation.item.input_audio_transcription.completed": {
      partials.delete(item);
      showPartial();
      const li = row(item);
      li.querySelector(".text").textContent = event.transcript;
      if (endedAt.has(item)) {
        li.querySelector(".latency").textContent = `${Math.round(performance.now() - endedAt.get(item))} ms after speech end`;
      }
      break;
    }
    case "voxmesh.transcription.timing":
      row(item).querySelector(".span").textContent = `[${event.start_s.toFixed(2)} – ${event.end_s.toFixed(2)} s]`;
      break;
    case "voxmesh.transcription.processed": {
      const processed = row(item).querySelector(".processed");
      processed.textContent = event.text;
      processed.hidden = false;
      break;
    }
    case "conversation.item.input_audio_transcription.failed": {
      const li = row(item);
      li.classList.add("failed");
      li.querySelector(".text").textContent = `failed: ${event.error.code}: ${event.error.message}`;
      break;
    }
    case "error":
      $("status").textContent = `error: ${event.error.message}`;
      break;
  }
}

function base64(int16) {
  const bytes = new Uint8Array(int16.buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function send(float32) {
  const pcm = new Int16Array(float32.length);
  let energy = 0;
  for (let i = 0; i < float32.length; i++) {
    const s = Math.max(-1, Math.min(1, float32[i]));
    pcm[i] = s < 0 ? s * 0x8000 : s * 0x7fff;
    energy += s * s;
  }
  $("level").style.width = `${Math.min(100, Math.sqrt(energy / float32.length) * 400)}%`;
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ type: "input_audio_buffer.append", audio: base64(pcm) }));
  }
}

function open() {
  return new Promise((resolve, reject) => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const key = $("key").value.trim();
    socket = new WebSocket(`${scheme}://${location.host}/v1/realtime${key ? `?token=${encodeURIComponent(key)}` : ""}`);
    socket.onmessage = (message) => onEvent(JSON.parse(message.data));
    socket.onclose = () => { $("status").textContent = "disconnected"; };
    socket.onerror = () => reject(new Error("the WebSocket failed"));
    socket.onopen = () => {
      socket.send(JSON.stringify({
        type: "session.update",
        session: { type: "transcription", audio: { input: {
          format: { type: "audio/pcm", rate: RATE },
          transcription: { model: "voxmesh" },
          turn_detection: { type: "server_vad" },
        } } },
      }));
      resolve();
    };
  });
}

async function startMicrophone() {
  await open();
  context = new AudioContext({ sampleRate: RATE });
  await context.audioWorklet.addModule("/static/capture.js");
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true } });
  source = context.createMediaStreamSource(stream);
  const capture = new AudioWorkletNode(context, "capture");
  let block = [];
  capture.port.onmessage = (message) => {  // 128-sample blocks, gathered to 100 ms per append
    block.push(message.data);
    if (block.length * 128 >= RATE / 10) {
      const joined = new Float32Array(block.reduce((n, b) => n + b.length, 0));
      let at = 0;
      for (const b of block) { joined.set(b, at); at += b.length; }
      block = [];
      send(joined);
    }
  };
  source.connect(capture);
  stopped = false;
  $("status").textContent = "listening";
  $("mic").disabled = true;
  $("stop").disabled = false;
}

async function streamFile(file) {
  await open();
  const decoded = await new AudioContext().decodeAudioData(await file.arrayBuffer());
  const offline = new OfflineAudioContext(1, Math.ceil(decoded.duration * RATE), RATE);
  const player = offline.createBufferSource();
  player.buffer = decoded;
  player.connect(offline.destination);
  player.start();
  const samples = (await offline.startRendering()).getChannelData(0);
  stopped = false;
  $("status").textContent = `streaming ${file.name}`;
  $("stop").disabled = false;
  const step = RATE / 10;
  for (let at = 0; at < samples.length && !stopped; at += step) {
    send(samples.subarray(at, at + step));
    await new Promise((resolve) => setTimeout(resolve, 100));  // real time: 100 ms of audio per 100 ms
  }
  socket.send(JSON.stringify({ type: "input_audio_buffer.commit" }));
  $("status").textContent = `sent ${file.name}`;
}

function stop() {
  stopped = true;
  if (source) source.mediaStream.getTracks().forEach((track) => track.stop());
  if (context) context.close();
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "input_audio_buffer.commit" }));
  $("mic").disabled = false;
  $("stop").disabled = true;
  $("status").textContent = "stopped";
}

$("mic").onclick = () => startMicrophone().catch((error) => { $("status").textContent = error.message; });
$("stop").onclick = stop;
$("file").onchange = (event) => event.target.files[0] && streamFile(event.target.files[0]).catch((error) => { $("status").textContent = error.message; });
