// Validates Kubernetes objects against Kubernetes' own OpenAPI schemas, as
// compiled by the kubernetes-models package (npm). Usage:
//   node validate_models.mjs MODELS_DIR OBJECTS.json
// OBJECTS.json: a JSON array of objects. Prints, per object, "ok KIND NAME"
// or "invalid KIND NAME: WHY", or "unknown KIND NAME: WHY" when the package
// has no model for its apiVersion and kind.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [modelsDir, objectsFile] = process.argv.slice(2);
const objects = JSON.parse(fs.readFileSync(objectsFile, "utf8"));
const root = path.join(modelsDir, "node_modules", "kubernetes-models");
for (const obj of objects) {
  const what = `${obj.kind} ${obj.metadata?.name ?? "?"}`;
  // "apps/v1" -> apps/v1, "v1" -> v1 (the core group).
  const file = path.join(root, obj.apiVersion, "index.js");
  let Model;
  try {
    const module = await import(pathToFileURL(file).href);
    Model = module[obj.kind];
  } catch (e) {
    console.log(`unknown ${what}: ${obj.apiVersion}: ${e.message.split("\n")[0]}`);
    continue;
  }
  if (typeof Model !== "function") {
    console.log(`unknown ${what}: no model for ${obj.apiVersion} ${obj.kind}`);
    continue;
  }
  try {
    new Model(obj).validate();
    console.log(`ok ${what}`);
  } catch (e) {
    console.log(`invalid ${what}: ${String(e.message).split("\n")[0]}`);
  }
}
