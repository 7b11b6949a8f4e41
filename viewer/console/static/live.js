// The live WebSocket: frames (binary) and camera/alarm lists (JSON); reconnects by itself.
// Each frame is acknowledged once painted: the server then sends that camera's newest frame.
// onFrame(meta, bitmap) owns the bitmap (it keeps it to redraw when the frame's tracks arrive, and closes it).
export function connectLive({ onFrame, onCameras, onAlarms, onTracks, onState }) {
  let ws = null;
  let delay = 500;
  let watching = null;

  function open() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}/ws`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      delay = 500;
      onState(true);
      if (watching) ws.send(JSON.stringify({ type: "watch", cameras: watching }));
    };
    ws.onclose = (ev) => {
      onState(false);
      if (ev.code === 4401) { location.href = "/login.html"; return; }
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 5000);
    };
    ws.onmessage = async (ev) => {
      if (typeof ev.data === "string") {
        const msg = JSON.parse(ev.data);
        if (msg.type === "cameras") onCameras(msg);
        else if (msg.type === "alarms") onAlarms(msg.alarms);
        else if (msg.type === "tracks") onTracks(msg);
        return;
      }
      const view = new DataView(ev.data);
      const n = view.getUint32(0);
      const meta = JSON.parse(new TextDecoder().decode(new Uint8Array(ev.data, 4, n)));
      const socket = ws;
      try {
        const bitmap = await createImageBitmap(new Blob([new Uint8Array(ev.data, 4 + n)], { type: "image/jpeg" }));
        requestAnimationFrame(() => {
          onFrame(meta, bitmap);
          ack(socket, meta.camera);
        });
      } catch (err) {
        ack(socket, meta.camera); // a picture that does not decode must not stop the camera
      }
    };
  }

  function ack(socket, camera) {
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ack", camera }));
  }

  open();
  return {
    watch(cameras) {
      watching = cameras;
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "watch", cameras }));
    },
  };
}
