import type { SliceCanvas } from './canvas.js';
import {
  fillRect,
  fillSuperellipse,
  inset,
  sectionAt,
  type Superellipse,
  type Superellipsoid,
} from './shapes.js';

/**
 * Label names of the phantom, index = label value. Names follow TotalSegmentator (`total` task);
 * the first seven keep TotalSegmentator's own values.
 */
export const PHANTOM_LABEL_NAMES: readonly string[] = [
  'background',
  'spleen',
  'kidney_right',
  'kidney_left',
  'gallbladder',
  'liver',
  'stomach',
  'pancreas',
  'colon',
  'aorta',
  'inferior_vena_cava',
  'vertebrae',
  'spinal_cord',
  'iliopsoas_left',
  'iliopsoas_right',
];

/** Label values by name. */
export const L = {
  spleen: 1,
  kidney_right: 2,
  kidney_left: 3,
  gallbladder: 4,
  liver: 5,
  stomach: 6,
  pancreas: 7,
  colon: 8,
  aorta: 9,
  inferior_vena_cava: 10,
  vertebrae: 11,
  spinal_cord: 12,
  iliopsoas_left: 13,
  iliopsoas_right: 14,
} as const;

/** Noise-free Hounsfield units of the tissues (portal-venous phase contrast). */
export const HU = {
  air: -1000,
  gas: -900,
  fat: -100,
  softTissue: 40,
  muscle: 50,
  liver: 60,
  spleen: 50,
  kidneyCortex: 55,
  kidneyMedulla: 30,
  gallbladder: 8,
  stomachWall: 45,
  gutFluid: 15,
  pancreas: 45,
  aorta: 160,
  ivc: 110,
  boneCortex: 750,
  boneCancellous: 250,
  bonePosterior: 600,
  disc: 85,
  csf: 10,
  cord: 35,
} as const;

// Geometry in mm, LPS (x -> patient left, y -> posterior, z -> superior), origin at the grid centre.
// Sizes are those of an average adult abdomen from the liver dome to the lower kidney poles.
const BODY = { x: 0, y: 10, a: 165, b: 125, fatRim: 18 };
const LIVER: Superellipsoid = { x: -65, y: -5, z: 30, a: 65, b: 75, c: 55, p: 2.5 };
const LIVER_LEFT_LOBE: Superellipsoid = { x: 10, y: -45, z: 45, a: 45, b: 25, c: 30, p: 2 };
const GALLBLADDER: Superellipsoid = { x: -50, y: -55, z: 0, a: 14, b: 14, c: 28, p: 2 };
const SPLEEN: Superellipsoid = { x: 95, y: 40, z: 35, a: 25, b: 45, c: 50, p: 2.2 };
const STOMACH: Superellipsoid = { x: 50, y: -40, z: 50, a: 50, b: 33, c: 35, p: 2 };
const PANCREAS: Superellipsoid = { x: 20, y: -12, z: 5, a: 60, b: 11, c: 12, p: 2 };
const COLON: readonly Superellipsoid[] = [
  { x: -100, y: -10, z: -40, a: 22, b: 22, c: 45, p: 2 },
  { x: 110, y: 10, z: -30, a: 20, b: 20, c: 50, p: 2 },
  { x: 0, y: -78, z: -12, a: 95, b: 18, c: 18, p: 2 },
];
const PSOAS: readonly [Superellipsoid, number][] = [
  [{ x: 42, y: 42, z: -90, a: 18, b: 16, c: 95, p: 2 }, L.iliopsoas_left],
  [{ x: -42, y: 42, z: -90, a: 18, b: 16, c: 95, p: 2 }, L.iliopsoas_right],
];
const KIDNEYS: readonly [Superellipsoid, number][] = [
  [{ x: 60, y: 50, z: -10, a: 28, b: 25, c: 55, p: 2 }, L.kidney_left],
  [{ x: -60, y: 50, z: -25, a: 28, b: 25, c: 55, p: 2 }, L.kidney_right],
];
const AORTA: Superellipse = { x: 12, y: 12, a: 11, b: 11, p: 2 };
const IVC: Superellipse = { x: -22, y: 10, a: 13, b: 10, p: 2 };
const VERTEBRAL_BODY: Superellipse = { x: 0, y: 48, a: 22, b: 18, p: 2.3 };
const CANAL = { x: 0, y: 78, ring: 17, canal: 10, cord: 5 };
/** Vertebral level height (body + disc) and disc thickness, mm. */
const LEVEL = 32;
const DISC = 7;

/** Outer body contour at height z (slightly varying so slices differ). */
function bodyAt(z: number): Superellipse {
  return { x: BODY.x, y: BODY.y, a: BODY.a + 6 * Math.sin(z / 50), b: BODY.b + 4 * Math.cos(z / 60), p: 2 };
}

/** Paints air, the fat rim and soft tissue, and sets each row's organ clip window to the body interior. */
function paintBody(c: SliceCanvas, z: number): void {
  const outer = bodyAt(z);
  const inner = inset(outer, BODY.fatRim)!;
  fillSuperellipse(c, outer, { hu: HU.fat, label: 0, clip: false });
  fillSuperellipse(c, inner, { hu: HU.softTissue, label: 0, clip: false });
  for (let v = 0; v < c.ny; v++) {
    const t = Math.abs((c.yOf(v) - inner.y) / inner.b);
    if (t > 1) {
      c.clipHi[v] = 0;
      continue;
    }
    const w = inner.a * Math.sqrt(1 - t * t);
    const [u0, u1] = c.colsIn(inner.x - w, inner.x + w);
    c.clipLo[v] = u0;
    c.clipHi[v] = u1 + 1;
  }
}

/** A hollow viscus: wall, fluid content and an anterior gas pocket above a horizontal air-fluid level. */
function paintViscus(c: SliceCanvas, s: Superellipse | null, label: number, gasFraction: number): void {
  if (!s) return;
  fillSuperellipse(c, s, { hu: HU.stomachWall, label });
  const lumen = inset(s, 3.5);
  if (!lumen) return;
  fillSuperellipse(c, lumen, { hu: HU.gutFluid, label });
  fillSuperellipse(c, lumen, { hu: HU.gas, label, yMax: lumen.y - lumen.b + 2 * lumen.b * gasFraction });
}

function paintSpine(c: SliceCanvas, z: number): void {
  const level = (((z + 1000) % LEVEL) + LEVEL) % LEVEL;
  if (level < DISC) {
    fillSuperellipse(c, VERTEBRAL_BODY, { hu: HU.disc, label: 0 });
  } else {
    fillSuperellipse(c, VERTEBRAL_BODY, { hu: HU.boneCortex, label: L.vertebrae });
    fillSuperellipse(c, inset(VERTEBRAL_BODY, 2.5), { hu: HU.boneCancellous, label: L.vertebrae });
  }
  const bone = { hu: HU.bonePosterior, label: L.vertebrae };
  if (level >= DISC + 2 && level < DISC + 15) fillRect(c, -42, 42, CANAL.y - 10, CANAL.y + 2, bone);
  const circle = (r: number): Superellipse => ({ x: CANAL.x, y: CANAL.y, a: r, b: r, p: 2 });
  fillSuperellipse(c, circle(CANAL.ring), bone);
  fillRect(c, -4, 4, CANAL.y + 10, CANAL.y + 34, bone);
  fillSuperellipse(c, circle(CANAL.canal), { hu: HU.csf, label: 0 });
  fillSuperellipse(c, circle(CANAL.cord), { hu: HU.cord, label: L.spinal_cord });
}

/**
 * Paints the noise-free anatomy of the axial plane at height z (mm) into `c`. Later organs win
 * where shapes overlap, in an order that keeps the anatomy plausible (vessels and bone last).
 */
export function paintAnatomy(c: SliceCanvas, z: number): void {
  c.reset(HU.air);
  paintBody(c, z);
  fillSuperellipse(c, sectionAt(LIVER, z), { hu: HU.liver, label: L.liver });
  fillSuperellipse(c, sectionAt(LIVER_LEFT_LOBE, z), { hu: HU.liver, label: L.liver });
  fillSuperellipse(c, sectionAt(GALLBLADDER, z), { hu: HU.gallbladder, label: L.gallbladder });
  fillSuperellipse(c, sectionAt(SPLEEN, z), { hu: HU.spleen, label: L.spleen });
  paintViscus(c, sectionAt(STOMACH, z), L.stomach, 0.3);
  fillSuperellipse(c, sectionAt(PANCREAS, z), { hu: HU.pancreas, label: L.pancreas });
  for (const seg of COLON) paintViscus(c, sectionAt(seg, z), L.colon, 0.5);
  for (const [m, label] of PSOAS) fillSuperellipse(c, sectionAt(m, z), { hu: HU.muscle, label });
  for (const [k, label] of KIDNEYS) {
    const s = sectionAt(k, z);
    fillSuperellipse(c, s, { hu: HU.kidneyCortex, label });
    fillSuperellipse(c, s && inset(s, 7), { hu: HU.kidneyMedulla, label });
  }
  fillSuperellipse(c, IVC, { hu: HU.ivc, label: L.inferior_vena_cava });
  fillSuperellipse(c, AORTA, { hu: HU.aorta, label: L.aorta });
  paintSpine(c, z);
}
