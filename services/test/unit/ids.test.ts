import { UUID_RE, uuidv7, uuidv7Floor } from '../../src/shared/ids';

const T = Date.UTC(2026, 11, 2, 4, 5, 6, 789);

describe('uuidv7', () => {
  it('is a version 7, variant 10 UUID whose first 48 bits are the millisecond', () => {
    const id = uuidv7(T);
    expect(id).toMatch(UUID_RE);
    expect(id[14]).toBe('7');
    expect(['8', '9', 'a', 'b']).toContain(id[19]);
    expect(parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(T);
  });

  it('keeps the order of creation within one millisecond (the random part counts up)', () => {
    const ids = Array.from({ length: 1000 }, () => uuidv7(T));
    expect(new Set(ids).size).toBe(1000);
    expect([...ids].sort()).toEqual(ids);
    const rand = (id: string): bigint => {
      const hex = id.replace(/-/g, '');
      const randA = BigInt(`0x${hex.slice(13, 16)}`);
      const randB = BigInt(`0x${hex.slice(16)}`) & ((1n << 62n) - 1n);
      return (randA << 62n) | randB;
    };
    for (let i = 1; i < ids.length; i++) expect(rand(ids[i] as string) - rand(ids[i - 1] as string)).toBe(1n);
  });

  it('starts a new millisecond from fresh random bits, below the top half so it can count up', () => {
    const firsts = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const id = uuidv7(T + 1 + i);
      firsts.add(id.slice(14));
      // the top bit of rand_a is clear: the 13th hex digit after the version nibble is below 8
      expect(parseInt(id[15] as string, 16)).toBeLessThan(8);
    }
    expect(firsts.size).toBe(50);
  });

  it('sorts ids of a later millisecond after every id of an earlier one, and an explicit older time before', () => {
    const early = uuidv7(T);
    const late = uuidv7(T + 1);
    const older = uuidv7(T - 40_000);
    expect(early < late).toBe(true);
    expect(older < early).toBe(true);
    expect(uuidv7Floor(T + 1) <= late).toBe(true);
    expect(early < uuidv7Floor(T + 1)).toBe(true);
  });
});
