/** Built-in simulated resources, so everything runs with no hardware. */
export interface ResourceCtx {
  name: string;
  attributes: Record<string, unknown>;
}
export type ResourceMethod = (params: Record<string, unknown>) => unknown;
export interface LoadedResource {
  kind?: string;
  [method: string]: unknown;
}

function sensor(): LoadedResource {
  let n = 0;
  return {
    kind: 'sensor',
    Readings: () => {
      n++;
      return { temperature_c: 20 + Math.sin(n / 50) * 5, humidity: 40 + (n % 10), n };
    },
  };
}

function movementSensor(): LoadedResource {
  let t = 0;
  return {
    kind: 'movement_sensor',
    Position: () => {
      t += 0.001;
      return { coordinate: { latitude: 40.7 + t * 1e-4, longitude: -74.0 + t * 1e-4 }, altitude_m: 10 + Math.sin(t) };
    },
    LinearVelocity: () => ({ x: Math.cos(t), y: Math.sin(t), z: 0 }),
    AngularVelocity: () => ({ x: 0, y: 0, z: Math.sin(t) * 0.1 }),
    LinearAcceleration: () => ({ x: 0, y: 0, z: 9.81 }),
    CompassHeading: () => ({ value: (t * 10) % 360 }),
    Orientation: () => ({ o_x: 0, o_y: 0, o_z: 1, theta: (t * 10) % 360 }),
  };
}

function camera(ctx: ResourceCtx): LoadedResource {
  const size = typeof ctx.attributes.image_bytes === 'number' ? Math.max(0, Math.floor(ctx.attributes.image_bytes)) : 65536;
  // Deterministic content so a reader can check it: byte i of image n = (n + i) & 0xff, copied
  // out of one pattern. A byte loop here ran 64 Ki iterations per call, which V8 compiled anew
  // on a background thread (OSR) call after call: the sim, not capture, was the cost.
  const pattern = new Uint8Array(size + 256);
  for (let i = 0; i < pattern.length; i++) pattern[i] = i & 0xff;
  let n = 0;
  return {
    kind: 'camera',
    ReadImage: (params: Record<string, unknown>) => {
      n++;
      const start = n & 0xff;
      const img = pattern.slice(start, start + size);
      const mime = typeof params.mime_type === 'string' ? params.mime_type : 'image/jpeg';
      return { data: img, mime_type: mime };
    },
  };
}

export const SIM_MODELS: Record<string, (ctx: ResourceCtx) => LoadedResource> = {
  'sim:sensor': sensor,
  'sim:movement_sensor': movementSensor,
  'sim:camera': camera,
};
