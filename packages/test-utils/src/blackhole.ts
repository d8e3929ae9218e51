import { spawn } from "node:child_process";
import { connect, type Socket } from "node:net";
import { once } from "node:events";

export interface Blackhole {
  port: number;
  close(): Promise<void>;
}

const SCRIPT = `
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(0)
print(s.getsockname()[1], flush=True)
sys.stdin.read()
`;

/**
 * A loopback port whose connects never complete: a listener (in a python3 child, which
 * never calls accept) with a backlog of 0, filled up by two connections of ours. Further SYNs
 * are dropped by the kernel, so a dial hangs until its own timeout — an "unreachable" backend
 * without sending a packet off the machine.
 */
export async function startBlackhole(): Promise<Blackhole> {
  const child = spawn("python3", ["-c", SCRIPT], { stdio: ["pipe", "pipe", "inherit"] });
  const [line] = (await once(child.stdout!, "data")) as [Buffer];
  const port = Number(line.toString().trim());
  const fillers: Socket[] = [];
  for (let i = 0; i < 3; i++) {
    const s = connect(port, "127.0.0.1");
    s.on("error", () => {});
    fillers.push(s);
  }
  await new Promise((r) => setTimeout(r, 50));
  return {
    port,
    async close() {
      for (const s of fillers) s.destroy();
      child.stdin!.end();
      child.kill();
      if (child.exitCode === null) await once(child, "exit");
    },
  };
}
