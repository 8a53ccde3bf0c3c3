import { describe, expect, it } from 'vitest';
import { InvalidId } from '../../src/errors.js';
import { validateKey, validatePrefix } from '../../src/storage/keys.js';

describe('validateKey', () => {
  it.each([
    'a.svs',
    'folder/slide.svs',
    'a/b/c.tiff',
    'name with spaces.svs',
    'dots..in..name.svs',
    '.hidden/x',
    '%41.svs',
  ])('accepts %j', (key) => expect(validateKey(key)).toBe(key));

  it.each([
    '',
    '../secret',
    'a/../../etc/passwd',
    '..',
    './a',
    '%2e%2e/x',
    '%2E%2e%2fx'.replace('%2f', '/'),
    'a/%2e%2e/b',
    '/etc/passwd',
    'C:/Windows/win.ini',
    'a\\..\\b',
    'a//b',
    'nul\u0000byte',
    'x'.repeat(1025),
  ])('refuses %j', (key) => {
    expect(() => validateKey(key)).toThrow(InvalidId);
  });

  it('allows an empty prefix or one ending in a slash', () => {
    expect(validatePrefix(undefined)).toBe('');
    expect(validatePrefix('cases/42/')).toBe('cases/42/');
    expect(() => validatePrefix('../')).toThrow(InvalidId);
  });
});
