// A custom resource module (config `resources[].module`): a factory, loaded in a collector thread.
export default function mySensor({ name, attributes }) {
  let n = 0;
  return {
    kind: 'sensor',
    Readings: () => ({ name, n: n++, scale: attributes.scale ?? 1 }),
  };
}
