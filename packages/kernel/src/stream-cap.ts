/** Keeps the head of a stream up to a byte budget and counts what it drops. */
export class StreamCap {
  private head = "";
  private keptBytes = 0;
  private droppedBytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** Appends text and returns the part that was kept (what a live viewer should see). */
  append(text: string): string {
    const bytes = Buffer.byteLength(text);
    if (this.droppedBytes > 0) {
      this.droppedBytes += bytes;
      return "";
    }
    const room = this.maxBytes - this.keptBytes;
    if (bytes <= room) {
      this.head += text;
      this.keptBytes += bytes;
      return text;
    }
    const buf = Buffer.from(text);
    let end = Math.max(room, 0);
    // Never split a UTF-8 sequence: back up to the start of the character at the cut.
    while (end > 0 && ((buf[end] ?? 0) & 0xc0) === 0x80) end--;
    const kept = buf.subarray(0, end).toString("utf8");
    this.head += kept;
    this.keptBytes += end;
    this.droppedBytes += bytes - end;
    return kept;
  }

  clear(): void {
    this.head = "";
    this.keptBytes = 0;
    this.droppedBytes = 0;
  }

  get dropped(): number {
    return this.droppedBytes;
  }

  text(): string {
    return this.droppedBytes > 0 ? this.head + truncationMarker(this.droppedBytes) : this.head;
  }
}

export function truncationMarker(droppedBytes: number): string {
  return `\n[... output truncated: ${droppedBytes.toLocaleString("en-US")} bytes dropped ...]`;
}
