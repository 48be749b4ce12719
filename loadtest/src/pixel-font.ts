/**
 * A 3×5 pixel font (upper-case letters, digits, a little punctuation) so charts can carry their
 * own titles, legends and tick labels without a font engine. Each glyph is five rows of three
 * bits, most significant bit on the left.
 */
const GLYPHS: Readonly<Record<string, readonly number[]>> = {
  A: [2, 5, 7, 5, 5],
  B: [6, 5, 6, 5, 6],
  C: [3, 4, 4, 4, 3],
  D: [6, 5, 5, 5, 6],
  E: [7, 4, 6, 4, 7],
  F: [7, 4, 6, 4, 4],
  G: [3, 4, 5, 5, 3],
  H: [5, 5, 7, 5, 5],
  I: [7, 2, 2, 2, 7],
  J: [1, 1, 1, 5, 2],
  K: [5, 5, 6, 5, 5],
  L: [4, 4, 4, 4, 7],
  M: [5, 7, 7, 5, 5],
  N: [6, 5, 5, 5, 5],
  O: [2, 5, 5, 5, 2],
  P: [6, 5, 6, 4, 4],
  Q: [2, 5, 5, 6, 3],
  R: [6, 5, 6, 5, 5],
  S: [3, 4, 2, 1, 6],
  T: [7, 2, 2, 2, 2],
  U: [5, 5, 5, 5, 7],
  V: [5, 5, 5, 5, 2],
  W: [5, 5, 7, 7, 5],
  X: [5, 5, 2, 5, 5],
  Y: [5, 5, 2, 2, 2],
  Z: [7, 1, 2, 4, 7],
  '0': [7, 5, 5, 5, 7],
  '1': [2, 6, 2, 2, 7],
  '2': [6, 1, 2, 4, 7],
  '3': [6, 1, 2, 1, 6],
  '4': [5, 5, 7, 1, 1],
  '5': [7, 4, 6, 1, 6],
  '6': [3, 4, 7, 5, 7],
  '7': [7, 1, 2, 2, 2],
  '8': [7, 5, 7, 5, 7],
  '9': [7, 5, 7, 1, 6],
  '.': [0, 0, 0, 0, 2],
  ',': [0, 0, 0, 2, 4],
  '-': [0, 0, 7, 0, 0],
  '+': [0, 2, 7, 2, 0],
  '/': [1, 1, 2, 4, 4],
  '%': [5, 1, 2, 4, 5],
  ':': [0, 2, 0, 2, 0],
  '(': [1, 2, 2, 2, 1],
  ')': [4, 2, 2, 2, 4],
  '=': [0, 7, 0, 7, 0],
  '×': [0, 5, 2, 5, 0],
  _: [0, 0, 0, 0, 7],
  ' ': [0, 0, 0, 0, 0],
};

/** Width of one character cell at scale 1 (3 pixels + 1 of spacing). */
export const CHAR_WIDTH = 4;
/** Height of a glyph at scale 1. */
export const CHAR_HEIGHT = 5;

/**
 * Calls `plot(x, y)` for every lit pixel of `text` drawn at (x, y) with square pixels of
 * `scale`. Lower-case letters are drawn as upper-case; unknown characters as blanks.
 */
export function rasterizeText(
  text: string,
  x: number,
  y: number,
  scale: number,
  plot: (px: number, py: number) => void,
): void {
  let cx = x;
  for (const ch of text.toUpperCase()) {
    const rows = GLYPHS[ch] ?? GLYPHS[' ']!;
    for (let r = 0; r < CHAR_HEIGHT; r++) {
      const bits = rows[r] ?? 0;
      for (let c = 0; c < 3; c++) {
        if (!(bits & (4 >> c))) continue;
        for (let dy = 0; dy < scale; dy++)
          for (let dx = 0; dx < scale; dx++) plot(cx + c * scale + dx, y + r * scale + dy);
      }
    }
    cx += CHAR_WIDTH * scale;
  }
}

/** Width in pixels of `text` at `scale`. */
export function textWidth(text: string, scale: number): number {
  return [...text].length * CHAR_WIDTH * scale;
}
