#!/usr/bin/env python3
"""Scripted fake of the Anthropic Messages API, for end-to-end tests.

The real Claude Code CLI talks to this server through ANTHROPIC_BASE_URL.
Python 3 standard library only.

    fake_anthropic.py --host H --port P --script SCRIPT.json \
                      --record RECORD.jsonl --port-file FILE [--dump-dir DIR]

--port 0 picks a free port; the bound port is written to --port-file (tmp file
+ rename) once the server listens. The script is re-read on every request.

Script format (JSON):

    {"turns": [
        {"tool": "Bash", "input": {"command": "echo hi > a.txt"}},
        {"tools": [{"tool": "Bash", "input": {...}},
                   {"tool": "Write", "input": {"file_path": "...", "content": "..."}}]},
        {"text": "Done."}
     ],
     "final_text":     answer once the script is exhausted (optional),
     "side_text":      answer to side requests (optional),
     "subagent_turns": turns for Task/Agent subagents (optional; default: one
                       text answer, so a subagent never replays main turns),
     "subagent_final_text": a subagent's answer past subagent_turns (optional),
     "compact_text":   answer to compaction requests (optional),
     "usage":          {"input_tokens": N, "output_tokens": M} for every answer
                       (also "cache_read_input_tokens", "cache_creation_input_tokens",
                       "cache_creation": {...}, "server_tool_use": {...}: passed on as given),
     "event_delay":    seconds between the events of every streamed answer (optional)}

A turn may also carry:
    "text"      together with "tool"/"tools": text shown before the tool calls;
    "delay"     seconds to wait before answering (float);
    "error"     {"status": 400, "type": "invalid_request_error", "message": "..."}:
                answer with an API error instead of a message (Claude Code
                retries 429/5xx/529 with backoff; 400 fails at once);
    "usage"     per-turn usage override;
    "event_delay" seconds between this answer's stream events (a slow stream);
    "error_times" N, with "error": only the first N requests for this turn
                (counted across the server's life) get the error; later ones
                are answered from the turn's tool/tools/text as usual.

Several conversations at once (a batch): "by_task" is a list of
{"match": "substring", "turns": [...]} entries; a main request whose first
user message contains "match" uses that entry's turns (first match wins),
others use the top-level "turns".

Selection is stateless: the turn index is the number of assistant messages
already present in the request's `messages` (several tool_use blocks of one
turn come back merged into one assistant message). A {"text": ...} turn ends
the conversation (stop_reason end_turn); past the end of the script the
answer is final_text. Requests are classified (see classify()) as main,
subagent, compact or side; only main requests use "turns".

Every request is recorded as one JSON line in --record: path, model, kind,
has_tools, turn, tool_results (every tool_result block in the request, with
tool_use_id / is_error / content as text), new_tool_results (those of the
last user message), usage returned (input_tokens/output_tokens and the whole
"usage" object), and a few headers, including the credential it received
(x_api_key, authorization: tests prove which key arrived; only fake keys ever do).
A streamed answer adds a line {"kind": "stream_end", "seq": N, "time": T} once
its last event is written. --dump-dir also keeps each raw body and its headers
(key redacted).
"""

import argparse
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, parse_qs

DEFAULT_FINAL_TEXT = "Done. (fake_anthropic: script exhausted)"
DEFAULT_SIDE_TEXT = "OK"
DEFAULT_SUBAGENT_TEXT = "Subagent done. (fake_anthropic)"
DEFAULT_COMPACT_TEXT = ("<analysis>fake</analysis>\n<summary>1. Primary Request and Intent: "
                        "(fake_anthropic compaction summary)</summary>")


class State:
    def __init__(self, script_path, record_path, dump_dir):
        self.script_path = script_path
        self.record_path = record_path
        self.dump_dir = dump_dir
        self.lock = threading.Lock()
        self.seq = 0
        self.errors_sent = {}

    def take_error(self, key, limit):
        """True while fewer than `limit` errors were sent for `key`."""
        with self.lock:
            sent = self.errors_sent.get(key, 0)
            if sent >= limit:
                return False
            self.errors_sent[key] = sent + 1
            return True

    def script(self):
        # Re-read on every request so a test may swap scripts without restarting.
        if not self.script_path:
            return {"turns": []}
        with open(self.script_path, "r", encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, list):
            data = {"turns": data}
        data.setdefault("turns", [])
        return data

    def next_seq(self):
        with self.lock:
            self.seq += 1
            return self.seq

    def record(self, entry):
        if not self.record_path:
            return
        line = json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n"
        with self.lock:
            with open(self.record_path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()

    def dump(self, seq, headers, body_bytes):
        if not self.dump_dir:
            return
        os.makedirs(self.dump_dir, exist_ok=True)
        with open(os.path.join(self.dump_dir, "req-%04d.json" % seq), "wb") as f:
            f.write(body_bytes)
        safe = {k: ("<redacted>" if k.lower() in ("x-api-key", "authorization") else v)
                for k, v in headers.items()}
        with open(os.path.join(self.dump_dir, "req-%04d.headers.json" % seq), "w", encoding="utf-8") as f:
            json.dump(safe, f, indent=1)


# ----------------------------------------------------------------- helpers

def flatten_content(content):
    """Text of a tool_result's content (a string or a list of blocks)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict):
                if block.get("type") == "text":
                    parts.append(block.get("text", ""))
                else:
                    parts.append("[%s]" % block.get("type", "?"))
            else:
                parts.append(str(block))
    return "\n".join(parts)


def tool_results_of(message):
    out = []
    content = message.get("content")
    if not isinstance(content, list):
        return out
    for block in content:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            out.append({
                "tool_use_id": block.get("tool_use_id"),
                "is_error": bool(block.get("is_error", False)),
                "content": flatten_content(block.get("content")),
            })
    return out


def system_text(body):
    system = body.get("system")
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n".join(b.get("text", "") for b in system if isinstance(b, dict))
    return ""


SUBAGENT_MARK = "cc_is_subagent=true"
COMPACT_MARKS = ("Do NOT call any tools", "Respond with TEXT ONLY")


def last_user_text(messages):
    """Text blocks of the last user message (tool results excluded)."""
    if not messages or not isinstance(messages[-1], dict) or messages[-1].get("role") != "user":
        return ""
    content = messages[-1].get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content
                         if isinstance(b, dict) and b.get("type") == "text")
    return ""


def classify(body):
    """What kind of request this is, as seen in Claude Code 2.1.x traffic.

    main      the agent loop: carries the tool definitions.
    subagent  a Task/Agent subagent's own loop: tools too, but the billing
              header line at the top of `system` says cc_is_subagent=true.
              Its `messages` start from zero, so it must not use main turns.
    compact   conversation compaction (/compact or auto-compact): carries the
              main tools and history, but the last user message orders
              "CRITICAL: Respond with TEXT ONLY. Do NOT call any tools."
    side      helpers (session titles, tool-use summaries, model checks...):
              no tools at all (toolFreeHelper), often max_tokens small.
    """
    tools = body.get("tools")
    if not (isinstance(tools, list) and len(tools) > 0):
        return "side"
    if SUBAGENT_MARK in system_text(body):
        return "subagent"
    text = last_user_text(body.get("messages") or [])
    if any(mark in text for mark in COMPACT_MARKS):
        return "compact"
    return "main"


def json_schema_of(body):
    """The JSON schema a structured-output request asks for, if any."""
    for fmt in ((body.get("output_config") or {}).get("format"), body.get("output_format")):
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
            return fmt["schema"]
    return None


def instance_of(schema, depth=0):
    """A small value that satisfies a (simple) JSON schema."""
    if depth > 8 or not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return instance_of(schema[key][0], depth + 1)
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), t[0] if t else None)
    if t == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {k: instance_of(v, depth + 1) for k, v in props.items()}
    if t == "array":
        return []
    if t == "string":
        return "fake"
    if t == "integer":
        return int(schema.get("minimum", 0))
    if t == "number":
        return schema.get("minimum", 0)
    if t == "boolean":
        return False
    return None


def estimate_tokens(obj):
    return max(1, len(json.dumps(obj, ensure_ascii=False)) // 4)


def new_msg_id():
    return "msg_fake_" + uuid.uuid4().hex[:24]


def tool_calls_of(turn, turn_index):
    if "tools" in turn:
        calls = turn["tools"]
    elif "tool" in turn:
        calls = [turn]
    else:
        calls = []
    blocks = []
    for i, call in enumerate(calls):
        name = call.get("tool") or call.get("name")
        blocks.append({
            "type": "tool_use",
            "id": call.get("id") or "toolu_fake_%02d_%02d_%s" % (turn_index, i, uuid.uuid4().hex[:8]),
            "name": name,
            "input": call.get("input", {}),
        })
    return blocks


def build_content(script, turn_index):
    """(content blocks, stop_reason, turn or None) for a main request."""
    turns = script.get("turns", [])
    if turn_index < len(turns):
        turn = turns[turn_index]
        blocks = []
        if turn.get("text"):
            blocks.append({"type": "text", "text": turn["text"]})
        tool_blocks = tool_calls_of(turn, turn_index)
        blocks.extend(tool_blocks)
        if not blocks:
            blocks.append({"type": "text", "text": script.get("final_text", DEFAULT_FINAL_TEXT)})
        return blocks, ("tool_use" if tool_blocks else "end_turn"), turn
    final = script.get("final_text", DEFAULT_FINAL_TEXT)
    return [{"type": "text", "text": final}], "end_turn", None


def sse(event, data):
    return ("event: %s\ndata: %s\n\n" % (event, json.dumps(data, ensure_ascii=False))).encode("utf-8")


def chunks(s, n):
    return [s[i:i + n] for i in range(0, len(s), n)] or [""]


# ----------------------------------------------------------------- handler

class Handler(BaseHTTPRequestHandler):
    server_version = "fake-anthropic/1.0"
    protocol_version = "HTTP/1.0"  # one request per connection; streams end at close

    def log_message(self, fmt, *args):
        sys.stderr.write("fake_anthropic: %s - %s\n" % (self.address_string(), fmt % args))

    # -- plumbing

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size_line = self.rfile.readline().strip()
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
            return data
        return b""

    def send_json(self, status, obj, extra_headers=None):
        payload = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("request-id", "req_fake_" + uuid.uuid4().hex[:16])
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)

    def basic_record(self, seq, body=None):
        parts = urlsplit(self.path)
        return {
            "seq": seq,
            "time": time.time(),
            "method": self.command,
            "path": parts.path,
            "query": parts.query,
            "user_agent": self.headers.get("User-Agent"),
            "anthropic_beta": self.headers.get("anthropic-beta"),
            "has_api_key": bool(self.headers.get("x-api-key") or self.headers.get("Authorization")),
            "x_api_key": self.headers.get("x-api-key"),
            "authorization": self.headers.get("Authorization"),
            "peer": self.client_address[0],
        }

    # -- verbs

    def do_GET(self):
        seq = self.server.state.next_seq()
        self.server.state.record(dict(self.basic_record(seq), kind="other"))
        path = urlsplit(self.path).path
        if path in ("/", "/health", "/healthz"):
            self.send_json(200, {"ok": True})
        else:
            self.send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "fake_anthropic: no such endpoint %s" % path}})

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_PUT(self):
        self.do_other_write()

    def do_DELETE(self):
        self.do_other_write()

    def do_PATCH(self):
        self.do_other_write()

    def do_other_write(self):
        seq = self.server.state.next_seq()
        self.read_body()
        self.server.state.record(dict(self.basic_record(seq), kind="other"))
        self.send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "fake_anthropic: unsupported"}})

    def do_POST(self):
        state = self.server.state
        seq = state.next_seq()
        raw = self.read_body()
        state.dump(seq, self.headers, raw)
        path = urlsplit(self.path).path
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError:
            body = None
        rec = self.basic_record(seq)
        if isinstance(body, dict):
            # What reached the API: tests prove no server-side network feature got through.
            rec["body_keys"] = sorted(body.keys())
            rec["tool_types"] = sorted({t.get("type", "custom") for t in body.get("tools") or [] if isinstance(t, dict)})

        if path == "/v1/messages/count_tokens":
            tokens = estimate_tokens(body) if body is not None else 1
            rec.update(kind="count_tokens", model=(body or {}).get("model"), input_tokens=tokens)
            state.record(rec)
            self.send_json(200, {"input_tokens": tokens})
            return

        if path != "/v1/messages":
            rec.update(kind="other")
            state.record(rec)
            self.send_json(404, {"type": "error", "error": {
                "type": "not_found_error", "message": "fake_anthropic: no such endpoint %s" % path}})
            return

        if not isinstance(body, dict):
            rec.update(kind="bad_request")
            state.record(rec)
            self.send_json(400, {"type": "error", "error": {"type": "invalid_request_error", "message": "body is not JSON"}})
            return

        try:
            script = state.script()
        except Exception as e:  # a broken script must fail loudly, not hang the CLI
            rec.update(kind="script_error", error=str(e))
            state.record(rec)
            self.send_json(400, {"type": "error", "error": {"type": "invalid_request_error", "message": "fake_anthropic: bad script: %s" % e}})
            return

        messages = body.get("messages") or []
        model = body.get("model") or "claude-sonnet-4-5"
        stream = bool(body.get("stream"))
        kind = classify(body)
        turn_index = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
        all_results = []
        for m in messages:
            if isinstance(m, dict) and m.get("role") == "user":
                all_results.extend(tool_results_of(m))
        last_results = []
        # Claude Code may append a "system" message after the tool result; take every
        # non-assistant message since the last assistant turn.
        for m in reversed(messages or []):
            if not isinstance(m, dict) or m.get("role") == "assistant":
                break
            if m.get("role") == "user":
                last_results = tool_results_of(m) + last_results

        rec.update(
            kind=kind,
            session_id=self.headers.get("X-Claude-Code-Session-Id"),
            model=model,
            stream=stream,
            has_tools=bool(body.get("tools")),
            tool_names=[t.get("name") for t in (body.get("tools") or []) if isinstance(t, dict)],
            turn=turn_index,
            n_messages=len(messages),
            max_tokens=body.get("max_tokens"),
            system_head=system_text(body)[:160],
            last_user_text=last_user_text(messages)[:4000],
            tool_results=all_results,
            new_tool_results=last_results,
        )

        turn = None
        script_key = "turns"
        if kind == "main":
            first_user = ""
            for m in messages:
                if isinstance(m, dict) and m.get("role") == "user":
                    c = m.get("content")
                    first_user = c if isinstance(c, str) else "\n".join(
                        b.get("text", "") for b in (c or []) if isinstance(b, dict) and b.get("type") == "text")
                    break
            chosen = script
            for i, entry in enumerate(script.get("by_task") or []):
                if entry.get("match") and entry["match"] in first_user:
                    chosen = dict(script, turns=entry.get("turns", []))
                    script_key = "by_task_%d" % i
                    break
            content, stop_reason, turn = build_content(chosen, turn_index)
        elif kind == "subagent":
            sub = {"turns": script.get("subagent_turns", []),
                   "final_text": script.get("subagent_final_text", DEFAULT_SUBAGENT_TEXT)}
            content, stop_reason, turn = build_content(sub, turn_index)
        elif kind == "compact":
            content, stop_reason = [{"type": "text", "text": script.get("compact_text", DEFAULT_COMPACT_TEXT)}], "end_turn"
        else:
            schema = json_schema_of(body)
            text = json.dumps(instance_of(schema)) if schema else script.get("side_text", DEFAULT_SIDE_TEXT)
            content, stop_reason = [{"type": "text", "text": text}], "end_turn"
        turn = turn or {}
        delay = float(turn.get("delay") or 0)

        error_due = bool(turn.get("error"))
        if error_due and "error_times" in turn:
            error_due = state.take_error((script_key, turn_index), int(turn["error_times"]))
        if error_due:
            err = turn["error"]
            status = int(err.get("status", 400))
            rec.update(answered="error", error_status=status, delay=delay)
            state.record(rec)
            time.sleep(delay)
            self.send_json(status, {"type": "error", "error": {
                "type": err.get("type", "invalid_request_error"),
                "message": err.get("message", "fake_anthropic: scripted error")}})
            return

        usage_override = turn.get("usage") or script.get("usage") or {}
        input_tokens = int(usage_override.get("input_tokens", estimate_tokens(messages) + estimate_tokens(body.get("system", ""))))
        output_tokens = int(usage_override.get("output_tokens", max(1, estimate_tokens(content))))
        usage = {"input_tokens": input_tokens, "output_tokens": output_tokens,
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        for key, value in usage_override.items():
            if key not in ("input_tokens", "output_tokens"):
                usage[key] = value
        event_delay = float(turn.get("event_delay") or script.get("event_delay") or 0)
        rec.update(answered=[b["type"] if b["type"] != "tool_use" else "tool_use:" + str(b["name"]) for b in content],
                   stop_reason=stop_reason, input_tokens=input_tokens, output_tokens=output_tokens, usage=usage,
                   delay=delay, event_delay=event_delay)
        state.record(rec)  # before any delay: tests see the request as soon as it arrives
        time.sleep(delay)

        msg_id = new_msg_id()
        if not stream:
            self.send_json(200, {
                "id": msg_id, "type": "message", "role": "assistant", "model": model,
                "content": content, "stop_reason": stop_reason, "stop_sequence": None,
                "usage": usage,
            })
            return

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.send_header("request-id", "req_fake_" + uuid.uuid4().hex[:16])
        self.end_headers()
        out = []
        start_usage = dict(usage, output_tokens=1)
        out.append(sse("message_start", {"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}}))
        for i, block in enumerate(content):
            if block["type"] == "text":
                out.append(sse("content_block_start", {"type": "content_block_start", "index": i,
                                                       "content_block": {"type": "text", "text": ""}}))
                for piece in chunks(block["text"], 40):
                    out.append(sse("content_block_delta", {"type": "content_block_delta", "index": i,
                                                           "delta": {"type": "text_delta", "text": piece}}))
            else:
                out.append(sse("content_block_start", {"type": "content_block_start", "index": i,
                                                       "content_block": {"type": "tool_use", "id": block["id"],
                                                                         "name": block["name"], "input": {}}}))
                for piece in chunks(json.dumps(block["input"], ensure_ascii=False), 60):
                    out.append(sse("content_block_delta", {"type": "content_block_delta", "index": i,
                                                           "delta": {"type": "input_json_delta", "partial_json": piece}}))
            out.append(sse("content_block_stop", {"type": "content_block_stop", "index": i}))
        out.append(sse("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                         "usage": {"output_tokens": output_tokens}}))
        out.append(sse("message_stop", {"type": "message_stop"}))
        try:
            for i, piece in enumerate(out):
                if i > 0 and event_delay > 0:
                    time.sleep(event_delay)
                self.wfile.write(piece)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        state.record({"kind": "stream_end", "seq": seq, "time": time.time()})


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("%d\n" % port)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Scripted fake of the Anthropic Messages API")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--script", help="scenario JSON file")
    ap.add_argument("--record", help="append one JSON line per request here")
    ap.add_argument("--port-file", help="write the bound port here once listening")
    ap.add_argument("--dump-dir", help="also save every raw request body here (debugging)")
    args = ap.parse_args(argv)

    if args.script:
        State(args.script, None, None).script()  # fail fast on a broken script

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.state = State(args.script, args.record, args.dump_dir)
    port = server.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, port)
    sys.stderr.write("fake_anthropic: listening on %s:%d\n" % (args.host, port))
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
