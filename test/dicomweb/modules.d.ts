// Neither package ships type declarations; the tests use them through test/dicomweb/client.ts.
declare module 'xhr2' {
  const XMLHttpRequest: unknown;
  export default XMLHttpRequest;
}
declare module 'dicomweb-client' {
  export const api: {
    DICOMwebClient: new (options: { url: string; headers?: Record<string, string> }) => unknown;
  };
}
