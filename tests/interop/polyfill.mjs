// matrix-js-sdk 43 targets Node 22 and calls Promise.withResolvers (ES2024), which Node 20
// lacks. Imported before the SDK so every module sees it.
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
