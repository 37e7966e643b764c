"""A light push service for the broadcast benchmark: accepts and counts, never decrypts.

Raw asyncio on 127.0.0.1, HTTP/1.1 keep-alive: reads each request's headers and
Content-Length body, answers 201 Created, counts accepted pushes and the bytes
of their bodies. `GET /count` answers the totals as JSON (it is not counted).
Run: `python bench/broadcast/push_server.py PORT` (prints "ready" when listening).
"""
import asyncio
import json
import sys

CREATED = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nLocation: /m\r\n\r\n"


class Totals:
    accepted = 0
    body_bytes = 0
    first = None
    last = None


class PushProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = bytearray()

    def data_received(self, data):
        self.buffer += data
        replies = []
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(self.buffer[:end])
            length = 0
            lowered = head.lower()
            at = lowered.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = lowered.find(b"\r\n", at + 2)
                length = int(lowered[at + 17: stop if stop > 0 else None])
            if len(self.buffer) < end + 4 + length:
                break
            del self.buffer[: end + 4 + length]
            if head.startswith(b"GET /count"):
                body = json.dumps({"accepted": Totals.accepted, "body_bytes": Totals.body_bytes,
                                   "first": Totals.first, "last": Totals.last}).encode()
                replies.append(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                               % (len(body), body))
                continue
            if head.startswith(b"POST /reset"):
                Totals.accepted = Totals.body_bytes = 0
                Totals.first = Totals.last = None
                replies.append(b"HTTP/1.1 204 No Content\r\n\r\n")
                continue
            now = asyncio.get_running_loop().time()
            Totals.accepted += 1
            Totals.body_bytes += length
            if Totals.first is None:
                Totals.first = now
            Totals.last = now
            replies.append(CREATED)
        if replies:
            self.transport.write(b"".join(replies))


async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(PushProtocol, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
