// dcmjs ships no type declarations; MedStream uses only its data dictionary (dictionary.ts).
declare module 'dcmjs' {
  const dcmjs: {
    data: {
      DicomMetaDictionary: { nameMap: Record<string, { tag: string; vr: string; name: string }> };
    };
  };
  export default dcmjs;
}
