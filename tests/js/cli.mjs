// What the client scripts share: their command line and their output, one JSON object a line.
//
// Usage: node <client>.mjs <generate|stream> [base URL] [API key]
// The base URL is the one a user gives that client (see its script); BASE_URL and API_KEY
// in the environment stand in for missing arguments, MODEL picks the model.

export const MODES = ["generate", "stream"];

export function readArgs() {
  const [mode, baseUrl = process.env.BASE_URL, apiKey = process.env.API_KEY] =
    process.argv.slice(2);
  if (!MODES.includes(mode) || !baseUrl || !apiKey) {
    console.error(`usage: node ${process.argv[1]} <${MODES.join("|")}> <base URL> <API key>`);
    process.exit(2);
  }
  return { mode, baseUrl, apiKey, model: process.env.MODEL ?? "gemini-2.5-flash" };
}

export function emit(event, fields) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + "\n");
}

// Run a client's call; a failure is one "error" line and exit code 1, never a stack trace only.
export async function run(call) {
  try {
    await call();
  } catch (error) {
    // @google/genai says status; the Vercel SDK says statusCode, on its last try's error.
    const status = error?.status ?? error?.statusCode ?? error?.lastError?.statusCode ?? null;
    emit("error", { message: String(error?.message ?? error), status });
    process.exitCode = 1;
  }
}
