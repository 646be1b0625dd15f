#!/usr/bin/env python3
"""Runs five conversations through a running `ieum serve` and prints them as Markdown
(used to write docs/sample-conversations.md). Needs `pip install websockets` and a staff
account `kim` (counselor) with the password given in IEUM_SAMPLE_PASSWORD.

    ieum serve --listen 127.0.0.1:8090 &
    python3 scripts/sample-conversations.py 8090
"""
import asyncio, json, os, sys, urllib.request

import websockets

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
BASE = f"127.0.0.1:{PORT}"


def show(frame):
    t = frame["type"]
    if t in ("bot", "safety"):
        lines = [f"< {frame['text']}"]
        res = [f"{r['name_ko']} ({r.get('phone', r.get('url', ''))})" for r in frame.get("resources", [])]
        if res:
            lines.append(f"  [resources: {', '.join(res)}]")
        qr = [q["label"] for q in frame.get("quick_replies", [])]
        if qr:
            lines.append(f"  [quick replies: {' | '.join(qr)}]")
        return "\n".join(lines)
    if t == "queue":
        return f"< {frame['text']}\n  [queue: position {frame['position']}, {frame['counselors_online']} counselors online]"
    if t == "counselor_joined":
        return "  [a counselor joined]"
    if t == "counselor":
        return f"< (counselor) {frame['text']}"
    if t == "closed":
        return f"  [closed by {frame['by']}]"
    if t == "safety_plan":
        lines = ["  [safety plan:"]
        for step in frame["steps"]:
            items = "; ".join(step["items"]) or "-"
            lines.append(f"     {step['title']}: {items}")
        lines[-1] += "]"
        return "\n".join(lines)
    return None


async def conversation(lines, lang="ko", counselor=None):
    out = []
    async with websockets.connect(f"ws://{BASE}/ws/chat?lang={lang}", origin=f"http://{BASE}") as ws:
        welcome = json.loads(await ws.recv())
        conv = welcome["conversation_id"]
        out.append(show({"type": "bot", **welcome["greeting"]}))
        for i, line in enumerate(lines):
            if line == "<counselor>":
                await counselor(conv, ws, out)
                continue
            out.append(f"> {line}")
            await ws.send(json.dumps({"type": "message", "id": f"m{i}", "text": line}))
            ack = None
            while True:
                try:
                    f = json.loads(await asyncio.wait_for(ws.recv(), 0.6))
                except asyncio.TimeoutError:
                    break
                if f["type"] == "ack":
                    ack = f
                    continue
                s = show(f)
                if s:
                    out.append(s)
            assert ack, "every message is acknowledged"
    return "\n".join(out)


def login(user, password):
    req = urllib.request.Request(
        f"http://{BASE}/api/login",
        data=json.dumps({"username": user, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    return json.loads(urllib.request.urlopen(req).read())["token"]


async def kim_answers(conv, citizen, out):
    token = login("kim", os.environ.get("IEUM_SAMPLE_PASSWORD", "a long password"))
    async with websockets.connect(
        f"ws://{BASE}/ws/counselor", additional_headers={"Authorization": f"Bearer {token}"}
    ) as k:
        await k.send(json.dumps({"type": "claim", "conversation_id": conv}))
        text = "Hi, I'm Kim, a counselor at ieum. Thank you so much for telling us. Where are you right now, and is anyone with you?"
        await asyncio.sleep(0.3)
        await k.send(json.dumps({"type": "message", "conversation_id": conv, "text": text}))
        while True:
            try:
                f = json.loads(await asyncio.wait_for(citizen.recv(), 0.8))
            except asyncio.TimeoutError:
                break
            s = show(f)
            if s:
                out.append(s)


def api(method, path, token, body=None):
    req = urllib.request.Request(
        f"http://{BASE}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    return json.loads(urllib.request.urlopen(req).read())


async def drain(ws, out, wait=0.8):
    while True:
        try:
            f = json.loads(await asyncio.wait_for(ws.recv(), wait))
        except asyncio.TimeoutError:
            return
        s = show(f)
        if s:
            out.append(s)


async def kim_follows_up(conv, citizen, out):
    """The counselor asks for consent in plain words, the person agrees, the chat closes,
    and the counselor plans a weekly check-in call (POST /api/followups)."""
    token = login("kim", os.environ.get("IEUM_SAMPLE_PASSWORD", "a long password"))
    async with websockets.connect(
        f"ws://{BASE}/ws/counselor", additional_headers={"Authorization": f"Bearer {token}"}
    ) as k:
        await k.send(json.dumps({"type": "claim", "conversation_id": conv}))
        await asyncio.sleep(0.3)
        for text in [
            "안녕하세요, 이음 상담사 김이에요. 말해 주셔서 정말 고마워요. 오늘 밤 함께 이야기한 대로 모아 둔 것은 언니에게 맡기고, 언니 집에서 지내기로 했어요.",
            "다음 주에 제가 다시 전화드려도 괜찮을까요? 괜찮으시면 받으실 번호를 알려 주세요. 원하지 않으시면 그렇게 말씀하셔도 돼요.",
        ]:
            await k.send(json.dumps({"type": "message", "conversation_id": conv, "text": text}))
            await drain(citizen, out)
        answer = "네, 전화 주셔도 돼요. 010-1234-5678이에요"
        out.append(f"> {answer}")
        await citizen.send(json.dumps({"type": "message", "id": "consent", "text": answer}))
        await drain(citizen, out)
        await k.send(json.dumps({"type": "close", "conversation_id": conv, "outcome": "referred"}))
        await drain(citizen, out)
    due = 1799024400000  # 2027-01-04 10:00 in Seoul: fixed, so the sample does not change
    r = api("POST", "/api/followups", token, {
        "conversation": conv, "kind": "call", "due_at": due, "sessions": 4,
        "consent": {"given": True, "words": answer.split(".")[0]},
        "contact": {"kind": "phone", "number": "010-1234-5678"},
        "note": "언니에게 연락했는지, 잠은 좀 잤는지",
    })
    out.append("  [staff: POST /api/followups → " + ", ".join(
        f"{f['series']['index']}/{f['series']['of']} {f['kind']} {f['status']}" for f in r["followups"]
    ) + " (weekly; consent recorded by " + r["followups"][0]["consent"]["recorded_by"] + ")]")


async def main():
    print("## 1. Loneliness, a prescription, the district\n\n```")
    print(await conversation(["안녕하세요", "요즘 너무 외로워요", "마음약방 외로움 처방해 주세요", "저 관악구 살아요"]))
    print("```\n\n## 2. A passive death wish: the screener, one question at a time\n\n```")
    print(await conversation(["그냥 다 사라지고 싶어요", "응", "아니", "아니요", "모르겠어요", "없어요", "아니요"]))
    print("```\n\n## 3. Risk in English: a handoff, then a counselor\n\n```")
    print(await conversation(["hi", "honestly i want to die tonight", "<counselor>"], lang="en", counselor=kim_answers))
    print("```\n\n## 4. The loneliness self-check\n\n```")
    print(await conversation(["요즘 너무 외로워요", "외로움 자가진단 해 볼래요", "3 자주", "가끔 그래요", "자주요"]))
    print("```\n\n## 5. A safety plan, written together after the screener\n\n```")
    print(await conversation([
        "아침에 눈 안 떴으면 좋겠어", "아니요", "아니요", "아니요", "네",
        "밤에 혼자 방에 있으면 생각이 많아져요", "동네 한 바퀴 걷기, 좋아하는 노래 듣기", "건너뛰기",
        "언니", "다니는 병원 선생님", "힘든 날엔 혼자 있지 않고 언니네 가기",
    ]))
    print("```\n\n## 6. A handoff, consent in plain words, and a weekly follow-up\n\n```")
    print(await conversation(["오늘 밤에 죽으려고 약을 모아뒀어요", "<counselor>"], counselor=kim_follows_up))
    print("```")


asyncio.run(main())
