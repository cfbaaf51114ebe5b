/**
 * Transfer progress maths: fraction, speed over a sliding window (not since the start: a resumed or
 * throttled upload shows what it does now), time left, and how the row says it.
 */
import { formatBytes } from './model';

export class SpeedMeter {
  private _samples: Array<{ t: number; bytes: number }> = [];

  /** window: seconds of samples the speed is taken over */
  constructor(private _window = 3) {}

  /** Record that `bytes` (a running total) were sent at time `t` (ms). */
  add(bytes: number, t: number): void {
    const s = this._samples;
    if (s.length > 0 && bytes < s[s.length - 1].bytes) {
      s.length = 0; // the count went back (a retry from the server's offset): start afresh
    }
    s.push({ t, bytes });
    const from = t - this._window * 1000;
    while (s.length > 2 && s[1].t <= from) {
      s.shift();
    }
  }

  /** Bytes per second over the window; 0 until two samples at least 100 ms apart. */
  get speed(): number {
    const s = this._samples;
    if (s.length < 2) {
      return 0;
    }
    const first = s[0];
    const last = s[s.length - 1];
    const dt = (last.t - first.t) / 1000;
    return dt >= 0.1 ? (last.bytes - first.bytes) / dt : 0;
  }

  reset(): void {
    this._samples = [];
  }
}

/** Seconds left at this speed; null when unknown. */
export function secondsLeft(sent: number, total: number, speed: number): number | null {
  if (speed <= 0 || total <= 0) {
    return null;
  }
  return Math.max(0, (total - sent) / speed);
}

export function formatDuration(seconds: number | null): string {
  if (seconds === null || !isFinite(seconds)) {
    return '';
  }
  const s = Math.round(seconds);
  if (s < 60) {
    return `${s} s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min ${s % 60} s`;
  }
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function percent(sent: number, total: number): number {
  if (total <= 0) {
    return 100;
  }
  return Math.min(100, Math.max(0, Math.floor((sent / total) * 1000) / 10));
}

/** "12.5 MiB of 20 MiB (62.5 %), 4.2 MiB/s, 2 s left" */
export function progressLabel(sent: number, total: number, speed: number): string {
  const parts = [`${formatBytes(sent)} of ${formatBytes(total)} (${percent(sent, total)} %)`];
  if (speed > 0) {
    parts.push(`${formatBytes(speed)}/s`);
    const left = formatDuration(secondsLeft(sent, total, speed));
    if (left && sent < total) {
      parts.push(`${left} left`);
    }
  }
  return parts.join(', ');
}
