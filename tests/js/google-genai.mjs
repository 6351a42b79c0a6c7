// Google's @google/genai SDK, with only its base URL and key set (its API version left to it).
// Its base URL is the host: the SDK adds the API version (v1 by default) and models/...
import { GoogleGenAI } from "@google/genai";

import { emit, readArgs, run } from "./cli.mjs";

const { mode, baseUrl, apiKey, model } = readArgs();
const ai = new GoogleGenAI({ apiKey, httpOptions: { baseUrl } });
const request = { model, contents: "Tell me a story" };

await run(async () => {
  if (mode === "generate") {
    const answer = await ai.models.generateContent(request);
    emit("result", { text: answer.text, finishReason: answer.candidates?.[0]?.finishReason });
    return;
  }
  let text = "";
  let finishReason;
  for await (const chunk of await ai.models.generateContentStream(request)) {
    emit("chunk", { text: chunk.text ?? "" });
    text += chunk.text ?? "";
    finishReason = chunk.candidates?.[0]?.finishReason ?? finishReason;
  }
  emit("result", { text, finishReason });
});
