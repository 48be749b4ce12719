import { describe, expect, it } from 'vitest';

import {
  checkHeadModel,
  featureSpaceVersion,
  formatRef,
  modelsCompatible,
  parseRef,
  refMatches,
} from './refs.js';

describe('name@version references', () => {
  it('parses names with and without a version, trimming blanks', () => {
    expect(parseRef('organ', 'head')).toEqual({ name: 'organ', version: '' });
    expect(parseRef(' organ @ 3 ', 'head')).toEqual({ name: 'organ', version: '3' });
    expect(parseRef('curia-b@1.2.0', 'model')).toEqual({ name: 'curia-b', version: '1.2.0' });
    expect(formatRef({ name: 'a', version: '' })).toBe('a');
    expect(formatRef({ name: 'a', version: '2' })).toBe('a@2');
  });

  it('refuses an empty name or an empty version, naming the field', () => {
    expect(() => parseRef('', 'heads[0]')).toThrow(/heads\[0\] '' must be "name" or "name@version"/);
    expect(() => parseRef('@2', 'start.model')).toThrow(/start\.model/);
    expect(() => parseRef('organ@', 'head')).toThrow(/head 'organ@' has an empty version/);
  });

  it('matches a reference against a name and version', () => {
    expect(refMatches(parseRef('m', 'x'), 'm', '7')).toBe(true);
    expect(refMatches(parseRef('m@7', 'x'), 'm', '7')).toBe(true);
    expect(refMatches(parseRef('m@6', 'x'), 'm', '7')).toBe(false);
    expect(refMatches(parseRef('n', 'x'), 'm', '7')).toBe(false);
  });
});

describe('head/backbone compatibility', () => {
  it('needs the same name, and the same version where both sides pin one', () => {
    expect(modelsCompatible('m@1', 'm@1')).toBe(true);
    expect(modelsCompatible('m@1', 'm@2')).toBe(false);
    expect(modelsCompatible('m@1', 'n@1')).toBe(false);
    expect(modelsCompatible('m@1', 'm')).toBe(true);
    expect(modelsCompatible('m', 'm@2')).toBe(true);
    expect(modelsCompatible('', 'm@2')).toBe(true);
  });

  it('lets a head run on the INT8 derivative of its bundle and the reverse, nothing else', () => {
    // By version suffix (what services that only see refs know)…
    expect(modelsCompatible('m@1', 'm@1-int8')).toBe(true);
    expect(modelsCompatible('m@1-int8', 'm@1')).toBe(true);
    expect(modelsCompatible('m@1-int8', 'm@1-int8')).toBe(true);
    expect(modelsCompatible('m@1', 'm@2-int8')).toBe(false);
    expect(modelsCompatible('m@1', 'n@1-int8')).toBe(false);
    expect(modelsCompatible('m@int8', 'm@1')).toBe(false);
    expect(featureSpaceVersion('-int8')).toBe('-int8');
    // …and by the manifests' feature_space, whatever the names.
    const fs = 'a'.repeat(64);
    expect(modelsCompatible('m@1', 'fast@7', { trainedOn: fs, featuresFrom: fs })).toBe(true);
    expect(modelsCompatible('m@1', 'fast@7', { trainedOn: fs, featuresFrom: 'b'.repeat(64) })).toBe(false);
    expect(modelsCompatible('m@1', 'fast@7', { trainedOn: fs })).toBe(false);
    // Different feature spaces leave today's name rule in charge.
    expect(modelsCompatible('m@1', 'm@1', { trainedOn: fs, featuresFrom: 'b'.repeat(64) })).toBe(true);
    expect(() =>
      checkHeadModel('organ@1', 'm@1', 'fast@7', { trainedOn: fs, featuresFrom: fs }),
    ).not.toThrow();
  });

  it('says which head, which model it was trained on and which was asked for', () => {
    let err: unknown;
    try {
      checkHeadModel('organ@1', 'm@1', 'm@2');
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect(String(err)).toMatch(/head 'organ@1' was trained on model 'm@1', not on 'm@2'/);
    expect(() => checkHeadModel('organ@1', 'm@1', 'm@1')).not.toThrow();
  });
});
