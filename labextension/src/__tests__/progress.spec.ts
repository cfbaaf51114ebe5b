import { SpeedMeter, formatDuration, percent, progressLabel, secondsLeft } from '../progress';

const MiB = 1024 * 1024;

describe('SpeedMeter', () => {
  it('is zero until two samples 100 ms apart', () => {
    const m = new SpeedMeter();
    expect(m.speed).toBe(0);
    m.add(0, 0);
    m.add(10, 50);
    expect(m.speed).toBe(0);
  });

  it('takes the speed over the last seconds, not since the start', () => {
    const m = new SpeedMeter(2);
    // 1 MiB/s for 10 s, then 4 MiB/s
    for (let t = 0; t <= 10; t++) {
      m.add(t * MiB, t * 1000);
    }
    for (let t = 11; t <= 14; t++) {
      m.add(10 * MiB + (t - 10) * 4 * MiB, t * 1000);
    }
    expect(m.speed).toBeCloseTo(4 * MiB, -3);
  });

  it('starts afresh when the count goes back (a retry from the server offset)', () => {
    const m = new SpeedMeter();
    m.add(0, 0);
    m.add(8 * MiB, 1000);
    m.add(6 * MiB, 2000);
    expect(m.speed).toBe(0);
    m.add(7 * MiB, 3000);
    expect(m.speed).toBeCloseTo(MiB, -3);
  });
});

describe('progress wording', () => {
  it('computes percent, time left and the label', () => {
    expect(percent(5, 20)).toBe(25);
    expect(percent(1, 3)).toBe(33.3);
    expect(percent(0, 0)).toBe(100);
    expect(percent(30, 20)).toBe(100);
    expect(secondsLeft(5 * MiB, 20 * MiB, MiB)).toBe(15);
    expect(secondsLeft(5, 20, 0)).toBeNull();
    expect(formatDuration(15)).toBe('15 s');
    expect(formatDuration(125)).toBe('2 min 5 s');
    expect(formatDuration(3 * 3600 + 120)).toBe('3 h 2 min');
    expect(formatDuration(null)).toBe('');
    expect(progressLabel(5 * MiB, 20 * MiB, MiB)).toBe('5 MiB of 20 MiB (25 %), 1 MiB/s, 15 s left');
    expect(progressLabel(0, 20 * MiB, 0)).toBe('0 B of 20 MiB (0 %)');
    expect(progressLabel(20 * MiB, 20 * MiB, 2 * MiB)).toBe('20 MiB of 20 MiB (100 %), 2 MiB/s');
  });
});
