import { CodeHistogram } from '../../src/core/metrics';
import { countRecords, evalUsage } from '../../eval/usage';

describe('evalUsage', () => {
  it('counts over all records: hand-computed usage and perplexity', () => {
    const h = new CodeHistogram(8);
    const n = countRecords(h, [
      { key: 'a', codes: Int32Array.from([0, 0, 1, 1]) },
      { key: 'b', codes: Int32Array.from([2, 2, 3, 3]) },
    ]);
    const s = h.stats();
    expect(n).toBe(2);
    expect(s.used).toBe(4);
    expect(s.usage).toBe(0.5);
    expect(s.perplexity).toBeCloseTo(4, 12); // four codes used equally
  });

  it('a BPE-only record and a missing folder are clear errors', async () => {
    expect(() => countRecords(new CodeHistogram(4), [{ key: 'x', codes: null }])).toThrow('Expected code grids but record x stores BPE ids only');
    await expect(evalUsage({ tokens: '/nonexistent/vtok-tokens' })).rejects.toThrow('Could not find /nonexistent/vtok-tokens');
  });
});
