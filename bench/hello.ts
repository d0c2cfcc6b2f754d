// Floor 1: what any Deno-based probe pays to start and print a line.
console.log("alive");
