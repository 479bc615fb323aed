/** A QR code rendered as one SVG path (uqr encodes; Solid renders, no innerHTML). */
import { createMemo } from "solid-js";
import { encode } from "uqr";

export function Qr(props: { text: string; label: string; testid?: string }) {
  const qr = createMemo(() => {
    const { data, size } = encode(props.text, { ecc: "L", border: 2 });
    let d = "";
    data.forEach((row, y) => {
      row.forEach((on, x) => {
        if (on) d += `M${x} ${y}h1v1h-1z`;
      });
    });
    return { d, size };
  });
  return (
    <svg
      class="qr"
      role="img"
      aria-label={props.label}
      data-testid={props.testid}
      viewBox={`0 0 ${qr().size} ${qr().size}`}
      shape-rendering="crispEdges"
    >
      <rect width="100%" height="100%" fill="#fff" />
      <path d={qr().d} fill="#000" />
    </svg>
  );
}
