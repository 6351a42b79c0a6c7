// The Vercel AI SDK (ai + @ai-sdk/google), with only its base URL and key set. Its base URL
// is the host + /v1beta: the provider adds models/... after it.
import { createGoogleGenerativeAI } from "@ai-sdk/google";
import { generateText, streamText } from "ai";

import { emit, readArgs, run } from "./cli.mjs";

// The SDK's warnings would go to the console; the output is JSON lines only.
globalThis.AI_SDK_LOG_WARNINGS = false;

const { mode, baseUrl, apiKey, model } = readArgs();
const google = createGoogleGenerativeAI({ apiKey, baseURL: baseUrl });
const request = { model: google(model), prompt: "Tell me a story" };

await run(async () => {
  if (mode === "generate") {
    const { text, finishReason } = await generateText(request);
    emit("result", { text, finishReason });
    return;
  }
  const result = streamText({
    ...request,
    onError: ({ error }) => {
      throw error;
    },
  });
  let text = "";
  for await (const piece of result.textStream) {
    emit("chunk", { text: piece });
    text += piece;
  }
  emit("result", { text, finishReason: await result.finishReason });
});
