/** The byte pattern the lab's HTTP servers serve at /bytes/N. */
export function pattern(n: number): Buffer;
