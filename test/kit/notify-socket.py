# A real unix datagram listener bound as NOTIFY_SOCKET (Node has no AF_UNIX SOCK_DGRAM).
# Prints one JSON line per datagram: {"t": seconds, "msg": "..."}; stops on stdin EOF.
import json, os, select, socket, sys, time
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print(json.dumps({"ready": True}), flush=True)
while True:
    r, _, _ = select.select([s, sys.stdin], [], [])
    if sys.stdin in r and not sys.stdin.readline():
        break
    if s in r:
        data = s.recv(65536).decode()
        print(json.dumps({"t": time.time(), "msg": data}), flush=True)
os.unlink(path)
